"""`python -m rt1_ros.train` (and torchrun -m rt1_ros.train): the rt1-train command. The code is rt1_ros.training."""
import sys

from rt1_ros.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
