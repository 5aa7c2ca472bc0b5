"""rt1_node's parameters: one typed config (`NodeConfig`), every leaf field of it a ROS parameter.

Each parameter is described once, on the dataclass field that holds it
(`rt1_ros.configuration.parameter_spec.parameter`): the model's in `PolicySource` (and `InferenceOptions.num_threads`,
as ``inference_threads``), smoothing and safety in `ControllerConfig`, and the node's own inputs, control loop and
outputs here. The ROS declarations (with ranges, so ROS rejects out-of-range updates with a reason and the old value
stays in force), `PARAMETER_SPECS`, the docs' table (``python -m rt1_ros.node.parameter_table``) and the check of
config/rt1.yaml all derive from these fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rt1_ros.configuration.parameter_spec import (ParameterSpec, check_parameters, from_parameters, parameter,
                                                  parameter_specs)
from rt1_ros.runtime.controller import ControllerConfig
from rt1_ros.runtime.policy_loading import PolicySource
from rt1_ros.configuration.yaml_config import ConfigError, config_dir, load_yaml

NODE_NAME = "rt1_node"


@dataclass(frozen=True)
class NodeConfig:
    # model (PolicySource: model_size … seed, then inference.num_threads as inference_threads)
    policy: PolicySource = PolicySource()
    # inputs
    image_transport: str = parameter("raw", "subscribe sensor_msgs/Image (raw) on `image` or CompressedImage on "
                                     "`image/compressed`", choices=("raw", "compressed"), read_only=True)
    image_reliability: str = parameter("best_effort", "camera QoS; best_effort receives from reliable and "
                                       "best-effort publishers", choices=("best_effort", "reliable"),
                                       read_only=True)
    max_image_pixels: int = parameter(4096 * 4096, "larger frames are refused", range=(1, 2**28))
    max_instruction_chars: int = parameter(1000, "longer instructions are refused", range=(1, 100_000))
    # control loop
    control_trigger: str = parameter("timer", "timer: step at control_rate_hz on the newest frame; image: step on "
                                     "every new frame", choices=("timer", "image"), read_only=True)
    control_rate_hz: float = parameter(3.0, "policy steps per second (timer trigger)", range=(0.1, 100.0),
                                       read_only=True)
    command_rate_hz: float = parameter(0.0, "republish velocity outputs between steps (MoveIt Servo needs > 10 Hz); "
                                       "0 = off", range=(0.0, 1000.0), read_only=True)
    diagnostics_rate_hz: float = parameter(1.0, "diagnostics publishing rate", range=(0.1, 100.0), read_only=True)
    log_throttle_s: float = parameter(5.0, "minimum seconds between repeats of the same warning",
                                      range=(0.0, 3600.0))
    # outputs
    base_output: str = parameter("twist", "cmd_vel as geometry_msgs/Twist or TwistStamped (Jazzy "
                                 "diff_drive_controller)", choices=("twist", "twist_stamped"), read_only=True)
    base_frame_id: str = parameter("base_link", "frame_id of TwistStamped base commands")
    arm_output: str = parameter("arm_command", "arm_command (rt1_ros/ArmCommand deltas), servo_twist (TwistStamped "
                                "velocity for MoveIt Servo) or both", choices=("arm_command", "servo_twist", "both"),
                                read_only=True)
    arm_frame_id: str = parameter("base_link", "frame the arm deltas are expressed in")
    # smoothing and safety (ControllerConfig: ema_alpha … start_enabled)
    controller: ControllerConfig = ControllerConfig()

    def __post_init__(self) -> None:
        # Ranges and choices of every parameter, nested ones included; ControllerConfig checks its cross-field rules
        # (threshold order, …) itself.
        check_parameters(self)

    def with_parameters(self, values: dict[str, Any]) -> "NodeConfig":
        """This config with the flat ROS parameter ``values`` changed; ValueError/TypeError when they do not fit."""
        return from_parameters(NodeConfig, values, base=self)


def params_file_section(path: str | Path | None = None) -> dict[str, Any]:
    """The ``ros__parameters`` mapping of rt1_node (or of ``/**``) in a ROS params file (config/rt1.yaml)."""
    path = Path(path or config_dir() / "rt1.yaml")
    data = load_yaml(path)
    section = data.get(NODE_NAME, data.get("/**", {})).get("ros__parameters", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path.name}: {NODE_NAME}.ros__parameters is not a mapping")
    return section


PARAMETER_SPECS: dict[str, ParameterSpec] = parameter_specs(NodeConfig)
