"""`python -m rt1_ros.training` (and `torchrun -m rt1_ros.training`): the rt1-train command."""
import sys

from rt1_ros.training.cli import main

sys.exit(main())
