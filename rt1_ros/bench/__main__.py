"""`python -m rt1_ros.bench`: the same as the `rt1-bench` console script."""
import sys

from rt1_ros.bench.cli import main

sys.exit(main())
