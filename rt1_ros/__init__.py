"""rt1_ros: an RT-1 (Robotics Transformer) policy for ROS 2 mobile manipulators.

The interfaces generated from msg/ and srv/ (``rt1_ros.msg``, ``rt1_ros.srv``) are built by CMake into a
separate prefix; ``extend_path`` lets them live beside this source tree as parts of the same package.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
