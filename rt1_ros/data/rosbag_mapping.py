"""The mapping YAML of `rt1-import-bag --mapping`: which of a robot's ordinary topics become RT-1's camera and each of
its 11 action dimensions (rt1_ros.configuration.action_layout.DIMENSION_NAMES). Every dimension is declared: by the
group that computes it (``arm`` gives arm_x .. arm_yaw, ``gripper``, ``base`` gives base_x .. base_yaw, ``mode``),
or as a constant; a mapping that leaves a group out is refused, naming its dimensions.

    clock: header                 # header: messages' header stamps (each transform's own); receive: bag times
    rate_hz: 3.0                  # control ticks t_k = first image of the episode + k / rate_hz
    frame_tolerance_s: 0.01       # an image stamped this little after a tick is still that tick's frame (jitter)
    max_gap_s: 0.25               # longest gap between two samples of a stream that is interpolated across
    camera: /camera/image_raw     # sensor_msgs/Image or sensor_msgs/CompressedImage
    transforms: {dynamic: /tf, static: /tf_static}   # tf2_msgs/TFMessage topics (the defaults)
    arm:                          # arm_x .. arm_yaw: end-effector deltas in `frame`, per tick
      frame: base_link            # the frame whose axes the deltas are expressed in (the node's arm_command frame)
      end_effector_frame: gripper # a TF frame, chained to `frame` through static and dynamic transforms, or
      # pose_topic: /tcp_pose     # geometry_msgs/PoseStamped of the end effector (its frame chained through TF), or
      # twist_topic: /servo_node/delta_twist_cmds   # commanded geometry_msgs/TwistStamped, integrated per tick
      delay_s: 0.08               # measured poses: sampled this long after each tick (the arm's tracking lag)
    gripper:                      # closedness, 0 open .. 1 closed
      joints: {finger_left: {open: 0.04, closed: 0.0}, finger_right: {open: 0.04, closed: 0.0}}
      joint_states: /joint_states # sensor_msgs/JointState (the default)
      threshold: 0.25             # optional: closedness above it becomes 1, else 0 (a grasp stops the fingers early)
      delay_s: 0.08               # sampled at the tick's end plus this
      # or: topic: /gripper/command, field: data, scale: 1.0, offset: 0.0   (the command in force; any numeric field)
    base:                         # base_x, base_y, base_yaw: velocities (m/s, rad/s) in the base frame
      odometry: /odom             # nav_msgs/Odometry: `use: pose` (the displacement over the tick as the constant
      use: pose                   # twist that makes it) or `use: twist` (its twist averaged over the tick)
      delay_s: 0.0
      # or: cmd_vel: /cmd_vel     # geometry_msgs/Twist or TwistStamped, the command in force
    mode:                         # arm, or base while the base moves faster than a threshold; the last tick of an
      from: base_motion           # episode is terminate (motion zero, gripper held)
      linear_threshold: 0.01      # m/s
      angular_threshold: 0.01     # rad/s
      # or: constant: arm

A group may instead be ``{constant: 0.0}`` (``mode: {constant: arm}``): a fixed arm declares ``base: {constant:
0.0}`` rather than having it silently zeroed. Values are clipped to the action-space ranges as the tokenizer would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rt1_ros.configuration.action_layout import DIMENSION_NAMES, MODE_CLASSES
from rt1_ros.configuration.yaml_config import load_yaml, short_repr

CLOCKS = ("header", "receive")
GROUP_DIMENSIONS = {"arm": DIMENSION_NAMES[0:6], "gripper": DIMENSION_NAMES[6:7], "base": DIMENSION_NAMES[7:10],
                    "mode": DIMENSION_NAMES[10:11]}
TOP_LEVEL_KEYS = {"clock", "rate_hz", "frame_tolerance_s", "max_gap_s", "camera", "transforms", "arm", "gripper",
                  "base", "mode"}
ARM_KEYS = {"frame", "end_effector_frame", "pose_topic", "twist_topic", "delay_s", "command_timeout_s", "constant"}
GRIPPER_KEYS = {"joints", "joint_states", "threshold", "delay_s", "topic", "field", "scale", "offset", "constant"}
BASE_KEYS = {"odometry", "use", "delay_s", "cmd_vel", "constant"}
MODE_KEYS = {"from", "linear_threshold", "angular_threshold", "constant"}


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class ArmSource:
    constant: float | None = None
    frame: str = ""
    end_effector_frame: str = ""  # one of these three
    pose_topic: str = ""
    twist_topic: str = ""
    delay_s: float = 0.0
    command_timeout_s: float = 0.0  # twist_topic: a command older than this counts as zero; 0 = held until replaced


@dataclass(frozen=True)
class JointRange:
    open: float
    closed: float


@dataclass(frozen=True)
class GripperSource:
    constant: float | None = None
    joints: tuple[tuple[str, JointRange], ...] = ()
    joint_states: str = "/joint_states"
    threshold: float | None = None
    delay_s: float = 0.0
    topic: str = ""
    field: str = "data"
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class BaseSource:
    constant: float | None = None
    odometry: str = ""
    use: str = "pose"  # pose | twist
    delay_s: float = 0.0
    cmd_vel: str = ""


@dataclass(frozen=True)
class ModeSource:
    constant: str | None = None  # a mode class name
    linear_threshold: float = 0.01
    angular_threshold: float = 0.01


@dataclass(frozen=True)
class BagMapping:
    camera: str
    arm: ArmSource
    gripper: GripperSource
    base: BaseSource
    mode: ModeSource
    clock: str = "header"
    rate_hz: float = 3.0
    frame_tolerance_s: float = 0.01
    max_gap_s: float = 0.25
    tf_topic: str = "/tf"
    tf_static_topic: str = "/tf_static"

    @property
    def uses_transforms(self) -> bool:
        return bool(self.arm.end_effector_frame or self.arm.pose_topic)


def _number(value, where: str, positive: bool = False, non_negative: bool = False) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise MappingError(f"{where}: a finite number, found {short_repr(value)}")
    if positive and value <= 0:
        raise MappingError(f"{where}: must be > 0, found {value}")
    if non_negative and value < 0:
        raise MappingError(f"{where}: must be >= 0, found {value}")
    return float(value)


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{where}: a non-empty name, found {short_repr(value)}")
    return value.strip()


def _topic(value, where: str) -> str:
    name = _name(value, where)
    return name if name.startswith("/") else "/" + name  # bags store absolute names


def _group(data: dict, group: str, keys: set[str]) -> dict:
    section = data.get(group)
    if section is None:
        dims = ", ".join(GROUP_DIMENSIONS[group])
        raise MappingError(f"{group}: {dims} not mapped; map them from a topic or declare {group}: "
                           f"{{constant: {'arm' if group == 'mode' else '0.0'}}}")
    if not isinstance(section, dict):
        raise MappingError(f"{group}: expected a mapping, found {short_repr(section)}")
    unknown = sorted(set(section) - keys)
    if unknown:
        raise MappingError(f"{group}: unknown key(s) {unknown}; known: {sorted(keys)}")
    if "constant" in section and len(section) > 1:
        raise MappingError(f"{group}: a constant takes no other keys (found {sorted(set(section) - {'constant'})})")
    return section


def _one_of(section: dict, group: str, choices: tuple[str, ...]) -> str:
    given = [key for key in choices if key in section]
    if len(given) != 1:
        raise MappingError(f"{group}: give exactly one of {list(choices)}" + (f", found {given}" if given else ""))
    return given[0]


def _arm(data: dict) -> ArmSource:
    section = _group(data, "arm", ARM_KEYS)
    if "constant" in section:
        return ArmSource(constant=_number(section["constant"], "arm.constant"))
    kind = _one_of(section, "arm", ("end_effector_frame", "pose_topic", "twist_topic"))
    value = _name(section[kind], f"arm.{kind}") if kind == "end_effector_frame" else \
        _topic(section[kind], f"arm.{kind}")
    if kind != "twist_topic" and "command_timeout_s" in section:
        raise MappingError("arm.command_timeout_s: only for a twist_topic (commanded velocities)")
    if kind == "twist_topic" and "delay_s" in section:
        raise MappingError("arm.delay_s: only for measured poses (end_effector_frame, pose_topic); a twist_topic is "
                           "the command itself")
    return ArmSource(frame=_name(section.get("frame"), "arm.frame"), **{kind: value},
                     delay_s=_number(section.get("delay_s", 0.0), "arm.delay_s", non_negative=True),
                     command_timeout_s=_number(section.get("command_timeout_s", 0.0), "arm.command_timeout_s",
                                               non_negative=True))


def _gripper(data: dict) -> GripperSource:
    section = _group(data, "gripper", GRIPPER_KEYS)
    if "constant" in section:
        value = _number(section["constant"], "gripper.constant")
        if not 0.0 <= value <= 1.0:
            raise MappingError(f"gripper.constant: closedness in [0, 1], found {value}")
        return GripperSource(constant=value)
    kind = _one_of(section, "gripper", ("joints", "topic"))
    if kind == "topic":
        misplaced = sorted(set(section) & {"joint_states", "threshold", "delay_s"})
        if misplaced:
            raise MappingError(f"gripper: {misplaced} belong to a gripper read from joints, not from a command topic")
        field = _name(section.get("field", "data"), "gripper.field")
        return GripperSource(topic=_topic(section["topic"], "gripper.topic"), field=field,
                             scale=_number(section.get("scale", 1.0), "gripper.scale"),
                             offset=_number(section.get("offset", 0.0), "gripper.offset"))
    misplaced = sorted(set(section) & {"field", "scale", "offset"})
    if misplaced:
        raise MappingError(f"gripper: {misplaced} belong to a gripper command topic, not to joints")
    joints = section["joints"]
    if not isinstance(joints, dict) or not joints:
        raise MappingError("gripper.joints: a mapping of joint names to {open: position, closed: position}")
    ranges = []
    for name, limits in joints.items():
        where = f"gripper.joints.{name}"
        if not isinstance(limits, dict) or set(limits) != {"open", "closed"}:
            raise MappingError(f"{where}: expected {{open: position, closed: position}}, found {short_repr(limits)}")
        joint_range = JointRange(open=_number(limits["open"], f"{where}.open"),
                                 closed=_number(limits["closed"], f"{where}.closed"))
        if joint_range.open == joint_range.closed:
            raise MappingError(f"{where}: open and closed positions are equal ({joint_range.open})")
        ranges.append((_name(name, where), joint_range))
    threshold = section.get("threshold")
    if threshold is not None:
        threshold = _number(threshold, "gripper.threshold")
        if not 0.0 < threshold < 1.0:
            raise MappingError(f"gripper.threshold: in (0, 1), found {threshold}")
    return GripperSource(joints=tuple(ranges), joint_states=_topic(section.get("joint_states", "/joint_states"),
                                                                   "gripper.joint_states"),
                         threshold=threshold,
                         delay_s=_number(section.get("delay_s", 0.0), "gripper.delay_s", non_negative=True))


def _base(data: dict) -> BaseSource:
    section = _group(data, "base", BASE_KEYS)
    if "constant" in section:
        return BaseSource(constant=_number(section["constant"], "base.constant"))
    kind = _one_of(section, "base", ("odometry", "cmd_vel"))
    if kind == "cmd_vel":
        misplaced = sorted(set(section) & {"use", "delay_s"})
        if misplaced:
            raise MappingError(f"base: {misplaced} belong to odometry; cmd_vel is the command itself")
        return BaseSource(cmd_vel=_topic(section["cmd_vel"], "base.cmd_vel"))
    use = section.get("use", "pose")
    if use not in ("pose", "twist"):
        raise MappingError(f"base.use: pose or twist, found {short_repr(use)}")
    return BaseSource(odometry=_topic(section["odometry"], "base.odometry"), use=use,
                      delay_s=_number(section.get("delay_s", 0.0), "base.delay_s", non_negative=True))


def _mode(data: dict) -> ModeSource:
    section = _group(data, "mode", MODE_KEYS)
    if "constant" in section:
        if section["constant"] not in MODE_CLASSES[:2]:
            raise MappingError(f"mode.constant: arm or base (terminate ends each episode by itself), found "
                               f"{short_repr(section['constant'])}")
        return ModeSource(constant=section["constant"])
    if section.get("from") != "base_motion":
        raise MappingError(f"mode.from: base_motion (or mode: {{constant: arm}}), found "
                           f"{short_repr(section.get('from'))}")
    return ModeSource(linear_threshold=_number(section.get("linear_threshold", 0.01), "mode.linear_threshold",
                                               non_negative=True),
                      angular_threshold=_number(section.get("angular_threshold", 0.01), "mode.angular_threshold",
                                                non_negative=True))


def parse_mapping(data: dict) -> BagMapping:
    """The mapping ``data`` (parsed YAML), checked on its own; `rt1_ros.data.rosbag_ordinary` checks it against a
    bag (topics, types, frames, joints) before anything is written."""
    if not isinstance(data, dict):
        raise MappingError(f"expected a mapping at the top level, found {short_repr(data)}")
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise MappingError(f"unknown key(s) {unknown}; known: {sorted(TOP_LEVEL_KEYS)}")
    clock = data.get("clock", "header")
    if clock not in CLOCKS:
        raise MappingError(f"clock: one of {list(CLOCKS)}, found {short_repr(clock)}")
    if "camera" not in data:
        raise MappingError("camera: the image topic is required")
    transforms = data.get("transforms", {})
    if not isinstance(transforms, dict) or set(transforms) - {"dynamic", "static"}:
        raise MappingError(f"transforms: {{dynamic: /tf, static: /tf_static}}, found {short_repr(transforms)}")
    return BagMapping(camera=_topic(data["camera"], "camera"), arm=_arm(data), gripper=_gripper(data),
                      base=_base(data), mode=_mode(data), clock=clock,
                      rate_hz=_number(data.get("rate_hz", 3.0), "rate_hz", positive=True),
                      frame_tolerance_s=_number(data.get("frame_tolerance_s", 0.01), "frame_tolerance_s",
                                                non_negative=True),
                      max_gap_s=_number(data.get("max_gap_s", 0.25), "max_gap_s", positive=True),
                      tf_topic=_topic(transforms.get("dynamic", "/tf"), "transforms.dynamic"),
                      tf_static_topic=_topic(transforms.get("static", "/tf_static"), "transforms.static"))


def load_mapping(path: str | Path) -> BagMapping:
    try:
        return parse_mapping(load_yaml(path))
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from exc
