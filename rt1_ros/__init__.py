"""rt1_ros: an RT-1 (Robotics Transformer) policy for ROS 2 mobile manipulators.

The interfaces generated from msg/ and srv/ (``rt1_ros.msg``, ``rt1_ros.srv``) are built by CMake into a
separate prefix; ``extend_path`` lets them live beside this source tree as parts of the same package.
"""
import os
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"

# onnxruntime's PyPI wheels send usage telemetry on Linux and persist a device id under
# ~/.cache/Microsoft/DeveloperTools the moment anything imports them (torch's ONNX exporter does, before a backend
# is built). A robot's node must neither write to the home folder nor phone home: the opt-out has to be in the
# environment before that first import, so it is set when the package is (a user's own setting is kept).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
