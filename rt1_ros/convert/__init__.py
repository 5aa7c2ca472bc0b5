"""Converting Google's released RT-1 checkpoints (TensorFlow) into rt1_ros checkpoints, without TensorFlow.

tensor_bundle reads and writes TensorFlow's checkpoint files (``<prefix>.index`` + ``<prefix>.data-*``) in numpy.
"""
