"""RT-1 in PyTorch, one file per block (see rt1.py for the whole picture). Imports no ROS."""
