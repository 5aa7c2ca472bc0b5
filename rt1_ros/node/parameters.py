"""The node's parameters: one typed config (`NodeConfig`), defaults from config/rt1.yaml, declared with ranges.

Every field of `NodeConfig` is a ROS parameter of the same name. Numeric ranges and string choices are declared in
`PARAMETER_SPECS`, so ROS rejects out-of-range updates with a reason and the old value stays in force.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rt1_ros.model.rt1 import MODEL_SIZES
from rt1_ros.node.parameter_spec import ParameterSpec
from rt1_ros.runtime.controller import ControllerConfig
from rt1_ros.runtime.inference_optimisation import InferenceOptions
from rt1_ros.runtime.policy_loading import PolicySource
from rt1_ros.yaml_config import config_dir, from_mapping, load_yaml

NODE_NAME = "rt1_node"


@dataclass(frozen=True)
class NodeConfig:
    # model
    model_size: str = "paper"
    checkpoint: str = ""
    backbone_weights: str = ""
    device: str = "auto"
    half_precision: bool = False
    text_encoder: str = "bundled:all-MiniLM-L6-v2"
    action_space_file: str = ""
    seed: int = 0
    inference_threads: int = 0
    # inputs
    image_transport: str = "raw"
    image_reliability: str = "best_effort"
    max_image_pixels: int = 4096 * 4096
    max_instruction_chars: int = 1000
    # control loop
    control_trigger: str = "timer"
    control_rate_hz: float = 3.0
    command_rate_hz: float = 0.0
    diagnostics_rate_hz: float = 1.0
    log_throttle_s: float = 5.0
    # outputs
    base_output: str = "twist"
    base_frame_id: str = "base_link"
    arm_output: str = "arm_command"
    arm_frame_id: str = "base_link"
    # smoothing and safety (ControllerConfig)
    ema_alpha: float = 0.5
    gripper_close_threshold: float = 0.6
    gripper_open_threshold: float = 0.4
    image_timeout_s: float = 1.0
    max_base_linear_speed: float = 0.5
    max_base_angular_speed: float = 1.0
    max_arm_translation_step: float = 0.05
    max_arm_rotation_step: float = 0.25
    start_enabled: bool = False

    def __post_init__(self) -> None:
        for name, spec in PARAMETER_SPECS.items():
            value = getattr(self, name)
            if spec.choices and value not in spec.choices:
                raise ValueError(f"{name} must be one of {spec.choices}, got '{value}'")
            if spec.range and not spec.range[0] <= value <= spec.range[1]:
                raise ValueError(f"{name}={value} is outside [{spec.range[0]}, {spec.range[1]}]")
        self.controller_config()  # cross-field checks (thresholds order, …)

    def controller_config(self) -> ControllerConfig:
        return _project(self, ControllerConfig)

    def policy_source(self) -> PolicySource:
        return dataclasses.replace(_project(self, PolicySource),
                                   inference=InferenceOptions(num_threads=self.inference_threads))

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> "NodeConfig":
        """The ``rt1_node: ros__parameters:`` section of a ROS params file."""
        path = Path(path or config_dir() / "rt1.yaml")
        data = load_yaml(path)
        section = data.get(NODE_NAME, data.get("/**", {})).get("ros__parameters", {})
        section = {k: v for k, v in section.items() if k != "use_sim_time"}
        return from_mapping(cls, section, where=f"{path.name}:{NODE_NAME}")


def _project(config: NodeConfig, target: type):
    """The runtime config ``target`` from the same-named fields of the flat ROS parameter set (others: defaults)."""
    return target(**{f.name: getattr(config, f.name) for f in dataclasses.fields(target) if hasattr(config, f.name)})


PARAMETER_SPECS: dict[str, ParameterSpec] = {
    "model_size": ParameterSpec("RT-1 size from config/model.yaml when no checkpoint is given",
                                choices=MODEL_SIZES, read_only=True),
    "checkpoint": ParameterSpec("checkpoint directory (model.safetensors + config.yaml); empty = untrained",
                                read_only=True),
    "backbone_weights": ParameterSpec("ImageNet EfficientNet weights (.safetensors/.pth) for an untrained model",
                                      read_only=True),
    "device": ParameterSpec("inference device", choices=("auto", "cuda", "cpu"), read_only=True),
    "half_precision": ParameterSpec("fp16 inference on CUDA (ignored on CPU)", read_only=True),
    "text_encoder": ParameterSpec("SentenceTransformer name or path; bundled:all-MiniLM-L6-v2 works offline",
                                  read_only=True),
    "action_space_file": ParameterSpec("action ranges YAML; empty = the checkpoint's, else config/action_space.yaml",
                                       read_only=True),
    "seed": ParameterSpec("seed of an untrained model's initialisation", range=(0, 2**31 - 1), read_only=True),
    "inference_threads": ParameterSpec("intra-op CPU threads for inference; 0 = torch's default (all cores). On a "
                                       "small or shared CPU use 1 (README: Performance)", range=(0, 256),
                                       read_only=True),
    "image_transport": ParameterSpec("subscribe sensor_msgs/Image (raw) on `image` or CompressedImage on "
                                     "`image/compressed`", choices=("raw", "compressed"), read_only=True),
    "image_reliability": ParameterSpec("camera QoS; best_effort receives from reliable and best-effort publishers",
                                       choices=("best_effort", "reliable"), read_only=True),
    "max_image_pixels": ParameterSpec("larger frames are refused", range=(1, 2**28)),
    "max_instruction_chars": ParameterSpec("longer instructions are refused", range=(1, 100_000)),
    "control_trigger": ParameterSpec("timer: step at control_rate_hz on the newest frame; image: step on every "
                                     "new frame", choices=("timer", "image"), read_only=True),
    "control_rate_hz": ParameterSpec("policy steps per second (timer trigger)", range=(0.1, 100.0), read_only=True),
    "command_rate_hz": ParameterSpec("republish velocity outputs between steps (MoveIt Servo needs > 10 Hz); "
                                     "0 = off", range=(0.0, 1000.0), read_only=True),
    "diagnostics_rate_hz": ParameterSpec("diagnostics publishing rate", range=(0.1, 100.0), read_only=True),
    "log_throttle_s": ParameterSpec("minimum seconds between repeats of the same warning", range=(0.0, 3600.0)),
    "base_output": ParameterSpec("cmd_vel as geometry_msgs/Twist or TwistStamped (Jazzy diff_drive_controller)",
                                 choices=("twist", "twist_stamped"), read_only=True),
    "base_frame_id": ParameterSpec("frame_id of TwistStamped base commands"),
    "arm_output": ParameterSpec("arm_command (rt1_ros/ArmCommand deltas), servo_twist (TwistStamped velocity for "
                                "MoveIt Servo) or both", choices=("arm_command", "servo_twist", "both"),
                                read_only=True),
    "arm_frame_id": ParameterSpec("frame the arm deltas are expressed in"),
    "ema_alpha": ParameterSpec("EMA weight of the newest action (1 = no smoothing)", range=(0.01, 1.0)),
    "gripper_close_threshold": ParameterSpec("gripper closes above this closedness", range=(0.0, 1.0)),
    "gripper_open_threshold": ParameterSpec("gripper opens below this closedness", range=(0.0, 1.0)),
    "image_timeout_s": ParameterSpec("zero motion when the newest valid image is older", range=(0.01, 60.0)),
    "max_base_linear_speed": ParameterSpec("m/s, planar speed limit", range=(0.0, 5.0)),
    "max_base_angular_speed": ParameterSpec("rad/s", range=(0.0, 10.0)),
    "max_arm_translation_step": ParameterSpec("m per control step", range=(0.0, 0.5)),
    "max_arm_rotation_step": ParameterSpec("rad per control step", range=(0.0, 3.15)),
    "start_enabled": ParameterSpec("false = dry run at start: compute and publish actions, send no motion",
                                   read_only=True),
}
