"""`rt1-import-bag --mapping`: a robot's ordinary topics (/tf, /joint_states, /odom, a camera, perhaps command
topics) -> RT-1 episodes, through a declared mapping (rt1_ros.data.rosbag_mapping; config/rosbag_mapping_ordinary.yaml
maps the simulator's topics).

Per episode (segments: one instruction for the whole bag, or a sidecar YAML, see `load_segments`):
* control ticks t_k = first image of the episode + k / rate_hz, up to its last image; frame k is the newest image
  at or before t_k (an image stamped up to ``frame_tolerance_s`` after t_k counts as at t_k: stamps jitter);
* action k describes what happened over [t_k, t_{k+1}):
  - arm deltas from the end-effector pose in the arm frame at t_k + delay and t_{k+1} + delay: translation
    difference, and the rotation D = R_{k+1} R_k^T as (roll, pitch, yaw) with D = Rz(yaw) Ry(pitch) Rx(roll), which
    is how the node and the simulator apply a rotation delta about the arm frame's axes; or, from commanded
    TwistStamped velocities, their integral over the tick;
  - the gripper's closedness from joints at t_{k+1} + delay (the state the tick's command led to), each normalised
    between its declared open and closed positions and averaged; or the command topic's value in force;
  - the base from odometry: the constant body twist that carries the pose at t_k + delay to the pose at
    t_{k+1} + delay, or the odometry's twist averaged over the tick; or cmd_vel's command in force;
  - mode as rt1-import-bag always derived it: base while the base moves above the thresholds (the arm deltas then
    zeroed), else arm (the base zeroed); the last tick is terminate with zero motion and the gripper held.
* Nothing is written until every bag has been read and checked: a topic, a frame, a joint or a field the mapping
  names and a bag lacks is refused by name first (`BagImportError`).

A measured pose is not the commanded one: a servo lags its target and contact stops it, so measured deltas differ
from the commands that caused them mostly where a motion starts or stops; ``delay_s`` shifts the sampling by the
servo's lag to line them up (docs/results.md gives the simulator's numbers).
"""
from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, BASE_DIMS, CONTINUOUS_DIMS, DIMENSION_NAMES,
                                                 GRIPPER_DIM, MODE_DIM, NUM_ACTION_DIMS, ActionSpaceConfig)
from rt1_ros.configuration.yaml_config import load_yaml, short_repr
from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter, open_or_empty
from rt1_ros.data.rosbag_mapping import BagMapping
from rt1_ros.data.transform_tree import (TransformError, TransformTree, planar_pose, planar_twist,
                                         roll_pitch_yaw_delta)
from rt1_ros.inference.image_decoding import decode_compressed, decode_raw, resize_for_model

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
TF_TYPE = "tf2_msgs/msg/TFMessage"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
TWIST_TYPES = ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped")
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
MAX_IMAGE_PIXELS = 1 << 24
SEGMENT_KEYS = {"start", "end", "instruction", "success", "task_family", "seed"}
SIDECAR_SUFFIX = ".segments.yaml"


def pose_frame(topic: str) -> str:
    """The frame name a pose topic's poses get in the transform tree (no TF frame looks like it)."""
    return f"pose_topic:{topic}"


class BagImportError(ValueError):
    """A bag, a sidecar or a mapping that cannot be imported (named in the message)."""


# ---------------------------------------------------------------------------------------------------- segments
@dataclass(frozen=True)
class Segment:
    """One episode of a bag: the images in [start, end] (seconds on the mapping's clock; None: the bag's first or
    last image)."""

    instruction: str
    success: bool = True
    start_s: float | None = None
    end_s: float | None = None
    task_family: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Segmentation:
    segments: tuple[Segment, ...]
    absolute: bool = False  # False: start/end count from the bag's first image


def whole_bag(instruction: str, success: bool = True) -> Segmentation:
    if not instruction.strip():
        raise BagImportError("the instruction is empty")
    return Segmentation((Segment(instruction=instruction, success=success),))


def sidecar_path(bag: Path) -> Path:
    """Where a bag's segmentation sidecar is looked for: beside the bag directory, <bag>.segments.yaml."""
    bag = Path(bag)
    return bag.parent / (bag.name + SIDECAR_SUFFIX)


def parse_segments(data, where: str) -> Segmentation:
    """A sidecar's content:

        time_base: first_image     # first_image: seconds after the bag's first camera image; absolute: seconds on
        episodes:                  # the mapping's clock (header stamps or bag receive times)
          - {start: 0.0, end: 12.5, instruction: "pick up the red cube", success: true}
          - {start: 14.0, end: 30.0, instruction: "push the blue cube left", success: false, task_family: push}
    """
    if not isinstance(data, dict) or set(data) - {"time_base", "episodes"}:
        raise BagImportError(f"{where}: expected keys time_base and episodes, found {short_repr(data)}")
    time_base = data.get("time_base", "first_image")
    if time_base not in ("first_image", "absolute"):
        raise BagImportError(f"{where}: time_base is first_image or absolute, found {short_repr(time_base)}")
    episodes = data.get("episodes")
    if not isinstance(episodes, list) or not episodes:
        raise BagImportError(f"{where}: episodes: a list of {{start, end, instruction, success}}")
    segments = []
    for index, entry in enumerate(episodes):
        here = f"{where}: episodes[{index}]"
        if not isinstance(entry, dict):
            raise BagImportError(f"{here}: expected a mapping, found {short_repr(entry)}")
        unknown = sorted(set(entry) - SEGMENT_KEYS)
        missing = sorted({"start", "end", "instruction"} - set(entry))
        if unknown or missing:
            raise BagImportError(f"{here}: " + "; ".join(([f"unknown key(s) {unknown}"] if unknown else [])
                                                          + ([f"missing {missing}"] if missing else [])))
        start, end = entry["start"], entry["end"]
        for key, value in (("start", start), ("end", end)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise BagImportError(f"{here}: {key} must be a number of seconds, found {short_repr(value)}")
        if end <= start:
            raise BagImportError(f"{here}: end {end} is not after start {start}")
        instruction = entry["instruction"]
        if not isinstance(instruction, str) or not instruction.strip():
            raise BagImportError(f"{here}: instruction must be a non-empty string")
        success = entry.get("success", True)
        if not isinstance(success, bool):
            raise BagImportError(f"{here}: success is true or false, found {short_repr(success)}")
        family = entry.get("task_family")
        if family is not None and not (isinstance(family, str) and family.strip()):
            raise BagImportError(f"{here}: task_family must be a non-empty string")
        seed = entry.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise BagImportError(f"{here}: seed must be a non-negative integer")
        segments.append(Segment(instruction=instruction, success=success, start_s=float(start), end_s=float(end),
                                task_family=family, seed=seed))
    ordered = sorted(segments, key=lambda s: s.start_s)
    for before, after in zip(ordered, ordered[1:]):
        if after.start_s < before.end_s:
            raise BagImportError(f"{where}: episodes {before.instruction!r} and {after.instruction!r} overlap")
    return Segmentation(tuple(segments), absolute=time_base == "absolute")


def load_segments(path: str | Path) -> Segmentation:
    try:
        data = load_yaml(path)
    except (OSError, ValueError) as exc:
        raise BagImportError(f"{path}: {exc}") from exc
    return parse_segments(data, str(path))


# ---------------------------------------------------------------------------------------------------- reading
@dataclass
class Series:
    """Samples of one stream in time order: times (ns) and values (N, d)."""

    source: str
    times: list[int] = field(default_factory=list)
    values: list = field(default_factory=list)

    def add(self, time_ns: int, value) -> None:
        self.times.append(time_ns)
        self.values.append(np.asarray(value, dtype=float))

    def finish(self) -> None:
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        self.times = [self.times[i] for i in order]
        self.values = [self.values[i] for i in order]

    def interpolate(self, time_ns: int, max_gap_ns: int) -> np.ndarray:
        """Linear between the neighbouring samples; the nearest one within max_gap_ns outside them."""
        if not self.times:
            raise BagImportError(f"{self.source}: no samples")
        index = bisect_right(self.times, time_ns)
        if index in (0, len(self.times)):
            nearest = 0 if index == 0 else len(self.times) - 1
            if abs(self.times[nearest] - time_ns) > max_gap_ns:
                raise BagImportError(f"{self.source}: no sample within {max_gap_ns / 1e9:g} s of t={time_ns / 1e9:.3f}"
                                     f" s (samples from {self.times[0] / 1e9:.3f} to {self.times[-1] / 1e9:.3f} s)")
            return self.values[nearest]
        span = self.times[index] - self.times[index - 1]
        if span > max_gap_ns:
            raise BagImportError(f"{self.source}: a gap of {span / 1e9:.3f} s around t={time_ns / 1e9:.3f} s (at most "
                                 f"{max_gap_ns / 1e9:g} s is interpolated)")
        fraction = (time_ns - self.times[index - 1]) / span if span else 0.0
        return self.values[index - 1] + fraction * (self.values[index] - self.values[index - 1])

    def between(self, start_ns: int, end_ns: int) -> list[np.ndarray]:
        """Samples in [start_ns, end_ns)."""
        return self.values[bisect_right(self.times, start_ns - 1):bisect_right(self.times, end_ns - 1)]

    def in_force(self, time_ns: int) -> np.ndarray | None:
        """The newest sample at or before ``time_ns`` (a command holds until replaced)."""
        index = bisect_right(self.times, time_ns) - 1
        return self.values[index] if index >= 0 else None


@dataclass
class BagStreams:
    """What an import needs from one bag, read without decoding images."""

    bag: Path
    image_times: list[int]  # sorted, on the mapping's clock
    image_order: list[int]  # for each sorted image, its position in the bag's reading order
    transforms: TransformTree | None
    joints: dict[str, Series]
    odometry_pose: TransformTree | None  # odometry as a one-edge tree: parent -> child
    odometry_frames: tuple[str, str] | None
    odometry_twist: Series | None
    arm_twist: Series | None
    gripper_command: Series | None
    base_command: Series | None


def make_typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _register_from_bag(typestore, connection) -> None:
    """Types the store does not know (a robot's own messages), from the definitions the bag carries."""
    if connection.msgtype in typestore.types:
        return
    from rosbags.typesys import get_types_from_msg

    definition = getattr(connection.msgdef, "data", "") or ""
    try:
        typestore.register(get_types_from_msg(definition, connection.msgtype))
    except Exception as exc:  # noqa: BLE001 — any parse failure means the same thing here
        raise BagImportError(f"topic {connection.topic}: message type {connection.msgtype} is unknown and the bag "
                             f"carries no usable definition ({exc})") from exc


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _field(message, path: str, topic: str):
    """``message``'s field at a dotted path with optional [index]es, e.g. ``data`` or ``position[0]``."""
    value = message
    for part in path.split("."):
        match = re.fullmatch(r"([A-Za-z_]\w*)((?:\[\d+\])*)", part)
        if match is None or not hasattr(value, match.group(1)):
            raise BagImportError(f"{topic}: message has no field {path!r}")
        value = getattr(value, match.group(1))
        for index in re.findall(r"\[(\d+)\]", match.group(2)):
            if int(index) >= len(value):
                raise BagImportError(f"{topic}: field {path!r} is out of range (length {len(value)})")
            value = value[int(index)]
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise BagImportError(f"{topic}: field {path!r} is not a number ({short_repr(value)})") from exc


def _roles(mapping: BagMapping) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """topic -> (role, accepted message types or None for any)."""
    roles: dict[str, tuple[str, tuple[str, ...] | None]] = {mapping.camera: ("camera", IMAGE_TYPES)}
    arm, gripper, base = mapping.arm, mapping.gripper, mapping.base
    if mapping.uses_transforms:
        roles[mapping.tf_topic] = ("tf", (TF_TYPE,))
        roles[mapping.tf_static_topic] = ("tf_static", (TF_TYPE,))
    if arm.pose_topic:
        roles[arm.pose_topic] = ("pose", (POSE_TYPE,))
    if arm.twist_topic:
        roles[arm.twist_topic] = ("arm_twist", TWIST_TYPES)
    if gripper.joints:
        roles[gripper.joint_states] = ("joints", (JOINT_STATE_TYPE,))
    if gripper.topic:
        roles[gripper.topic] = ("gripper_command", None)
    if base.odometry:
        roles[base.odometry] = ("odometry", (ODOMETRY_TYPE,))
    if base.cmd_vel:
        roles[base.cmd_vel] = ("base_command", TWIST_TYPES)
    return roles


OPTIONAL_ROLES = {"tf", "tf_static"}  # a bag may hold only one of them; the frames are checked instead


def read_streams(bag: str | Path, mapping: BagMapping) -> BagStreams:
    """Every mapped stream of ``bag`` (image times only), checked against the mapping: topics, types, frames and
    joints it names and the bag lacks are refused by name."""
    from rosbags.rosbag2 import Reader

    bag = Path(bag)
    roles = _roles(mapping)
    typestore = make_typestore()
    max_gap_ns = int(round(mapping.max_gap_s * 1e9))
    header_clock = mapping.clock == "header"
    try:
        reader_context = Reader(bag)
    except Exception as exc:  # noqa: BLE001 — rosbags raises its own error types for unreadable bags
        raise BagImportError(f"{bag}: not a readable rosbag2 directory ({exc})") from exc
    with reader_context as reader:
        by_topic = {}
        for connection in reader.connections:
            by_topic.setdefault(connection.topic, []).append(connection)
        available = sorted(by_topic)
        for topic, (role, types) in roles.items():
            if topic not in by_topic:
                if role in OPTIONAL_ROLES:
                    continue
                raise BagImportError(f"{bag}: topic {topic} ({role.replace('_', ' ')}) is not in the bag "
                                     f"(topics: {available})")
            for connection in by_topic[topic]:
                if types is not None and connection.msgtype not in types:
                    raise BagImportError(f"{bag}: topic {topic} is {connection.msgtype}; the mapping reads it as "
                                         f"{' or '.join(types)}")
                _register_from_bag(typestore, connection)
        if mapping.arm.end_effector_frame and not any(t in by_topic for t in (mapping.tf_topic,
                                                                              mapping.tf_static_topic)):
            raise BagImportError(f"{bag}: neither {mapping.tf_topic} nor {mapping.tf_static_topic} is in the bag "
                                 f"(topics: {available})")
        connections = [c for topic in roles if topic in by_topic for c in by_topic[topic]]
        image_entries: list[tuple[int, int]] = []
        transforms = TransformTree(max_gap_ns) if mapping.uses_transforms else None
        odometry_tree = TransformTree(max_gap_ns) if mapping.base.odometry else None
        odometry_frames = None
        joints = {name: Series(f"{mapping.gripper.joint_states} joint {name}") for name, _ in mapping.gripper.joints}
        seen_joints: set[str] = set()
        odometry_twist = Series(mapping.base.odometry) if mapping.base.odometry else None
        arm_twist = Series(mapping.arm.twist_topic) if mapping.arm.twist_topic else None
        gripper_command = Series(mapping.gripper.topic) if mapping.gripper.topic else None
        base_command = Series(mapping.base.cmd_vel) if mapping.base.cmd_vel else None
        image_count = 0
        for connection, receive_ns, raw in reader.messages(connections=connections):
            role = roles[connection.topic][0]
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            has_header = hasattr(message, "header")
            if header_clock and not has_header and role not in ("tf", "tf_static"):
                raise BagImportError(f"{bag}: topic {connection.topic} is {connection.msgtype}, which has no header "
                                     f"stamp; with clock: header map a stamped topic, or use clock: receive")
            time_ns = _stamp_ns(message.header.stamp) if header_clock and has_header else receive_ns
            if role == "camera":
                image_entries.append((time_ns, image_count))
                image_count += 1
            elif role in ("tf", "tf_static"):
                for transform in message.transforms:
                    t = transform.transform
                    stamp = _stamp_ns(transform.header.stamp) if header_clock else receive_ns
                    try:
                        transforms.add(transform.header.frame_id, transform.child_frame_id, stamp,
                                       (t.translation.x, t.translation.y, t.translation.z),
                                       (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w),
                                       static=role == "tf_static", source=connection.topic)
                    except TransformError as exc:
                        raise BagImportError(f"{bag}: {exc}") from exc
            elif role == "pose":
                p, q = message.pose.position, message.pose.orientation
                try:
                    transforms.add(message.header.frame_id or mapping.arm.frame, pose_frame(connection.topic), time_ns,
                                   (p.x, p.y, p.z), (q.x, q.y, q.z, q.w), static=False, source=connection.topic)
                except TransformError as exc:
                    raise BagImportError(f"{bag}: {exc}") from exc
            elif role == "arm_twist":
                twist = message.twist if hasattr(message, "twist") else message
                frame = message.header.frame_id if has_header else ""
                if frame not in ("", mapping.arm.frame):
                    raise BagImportError(f"{bag}: {connection.topic} commands in frame {frame!r}; the mapping's arm "
                                         f"frame is {mapping.arm.frame!r}")
                arm_twist.add(time_ns, (twist.linear.x, twist.linear.y, twist.linear.z,
                                        twist.angular.x, twist.angular.y, twist.angular.z))
            elif role == "joints":
                positions = dict(zip(message.name, np.asarray(message.position, dtype=float)))
                seen_joints.update(message.name)
                for name, series in joints.items():
                    if name in positions:
                        series.add(time_ns, [positions[name]])
            elif role == "gripper_command":
                gripper_command.add(time_ns, [_field(message, mapping.gripper.field, connection.topic)])
            elif role == "odometry":
                p, q = message.pose.pose.position, message.pose.pose.orientation
                frames = (message.header.frame_id or "odom", message.child_frame_id or "base")
                if odometry_frames is None:
                    odometry_frames = frames
                elif frames != odometry_frames:
                    raise BagImportError(f"{bag}: {connection.topic} switches frames from {odometry_frames} to "
                                         f"{frames}")
                odometry_tree.add(*frames, time_ns, (p.x, p.y, p.z), (q.x, q.y, q.z, q.w), static=False,
                                  source=connection.topic)
                twist = message.twist.twist
                odometry_twist.add(time_ns, (twist.linear.x, twist.linear.y, twist.angular.z))
            else:
                twist = message.twist if hasattr(message, "twist") else message
                base_command.add(time_ns, (twist.linear.x, twist.linear.y, twist.angular.z))
    if not image_entries:
        raise BagImportError(f"{bag}: no images on {mapping.camera}")
    missing_joints = [name for name, series in joints.items() if not series.times]
    if missing_joints:
        raise BagImportError(f"{bag}: joint(s) {missing_joints} not in {mapping.gripper.joint_states} "
                             f"(joints: {sorted(seen_joints)})")
    for tree in (transforms, odometry_tree):
        if tree is not None:
            tree.finish()
    for series in [*joints.values(), odometry_twist, arm_twist, gripper_command, base_command]:
        if series is not None:
            series.finish()
    if transforms is not None:
        source = mapping.arm.end_effector_frame or pose_frame(mapping.arm.pose_topic)
        try:
            transforms.check(mapping.arm.frame, source)
        except TransformError as exc:
            raise BagImportError(f"{bag}: arm: {exc}") from exc
    image_entries.sort()
    return BagStreams(bag=bag, image_times=[t for t, _ in image_entries], image_order=[i for _, i in image_entries],
                      transforms=transforms, joints=joints, odometry_pose=odometry_tree,
                      odometry_frames=odometry_frames, odometry_twist=odometry_twist, arm_twist=arm_twist,
                      gripper_command=gripper_command, base_command=base_command)


# ---------------------------------------------------------------------------------------------------- actions
@dataclass
class PlannedEpisode:
    """One episode of a bag with its actions computed; its frames are read when it is written."""

    bag: Path
    segment: Segment
    tick_times_ns: np.ndarray  # (T,)
    image_indices: np.ndarray  # (T,) index into BagStreams.image_times of each tick's frame
    actions: np.ndarray  # (T, 11) float32


def _integrate(series: Series, start_ns: int, end_ns: int, timeout_ns: int) -> np.ndarray:
    """Integral over [start_ns, end_ns) of a piecewise-constant command (each value held until the next, or for
    ``timeout_ns`` when that is > 0), in value × seconds."""
    if not series.times:
        return np.zeros(6)
    total = np.zeros_like(series.values[0])
    for index in range(max(bisect_right(series.times, start_ns) - 1, 0), len(series.times)):
        sent = series.times[index]
        if sent >= end_ns:
            break
        held_until = series.times[index + 1] if index + 1 < len(series.times) else end_ns
        if timeout_ns > 0:
            held_until = min(held_until, sent + timeout_ns)
        begin, stop = max(sent, start_ns), min(held_until, end_ns)
        if stop > begin:
            total = total + series.values[index] * ((stop - begin) / 1e9)
    return total


class ActionComputer:
    """The 11-d actions of one bag's ticks under a mapping."""

    def __init__(self, streams: BagStreams, mapping: BagMapping, action_space: ActionSpaceConfig) -> None:
        self.streams, self.mapping, self.space = streams, mapping, action_space
        self.max_gap_ns = int(round(mapping.max_gap_s * 1e9))
        self.period_ns = int(round(1e9 / mapping.rate_hz))

    def _pose(self, time_ns: int) -> tuple[np.ndarray, np.ndarray]:
        arm = self.mapping.arm
        try:
            return self.streams.transforms.lookup(arm.frame, arm.end_effector_frame or pose_frame(arm.pose_topic),
                                                  time_ns)
        except TransformError as exc:
            raise BagImportError(f"{self.streams.bag}: arm: {exc}") from exc

    def arm(self, start_ns: int, end_ns: int) -> np.ndarray:
        arm = self.mapping.arm
        if arm.constant is not None:
            return np.full(6, arm.constant)
        if arm.twist_topic:
            return _integrate(self.streams.arm_twist, start_ns, end_ns, int(round(arm.command_timeout_s * 1e9)))
        delay = int(round(arm.delay_s * 1e9))
        rotation_0, position_0 = self._pose(start_ns + delay)
        rotation_1, position_1 = self._pose(end_ns + delay)
        return np.concatenate([position_1 - position_0, roll_pitch_yaw_delta(rotation_0, rotation_1)])

    def gripper(self, start_ns: int, end_ns: int) -> float:
        gripper = self.mapping.gripper
        if gripper.constant is not None:
            return gripper.constant
        if gripper.topic:
            sent = self.streams.gripper_command.between(start_ns, end_ns)
            value = sent[-1] if sent else self.streams.gripper_command.in_force(start_ns - 1)
            raw = float(value[0]) if value is not None else 0.0  # before any command: open
            return float(np.clip(raw * gripper.scale + gripper.offset, 0.0, 1.0))
        time_ns = end_ns + int(round(gripper.delay_s * 1e9))
        closedness = []
        for name, joint_range in gripper.joints:
            position = float(self._interpolate(self.streams.joints[name], time_ns)[0])
            closedness.append((position - joint_range.open) / (joint_range.closed - joint_range.open))
        value = float(np.clip(np.mean(closedness), 0.0, 1.0))
        if gripper.threshold is not None:
            value = 1.0 if value > gripper.threshold else 0.0
        return value

    def base(self, start_ns: int, end_ns: int) -> np.ndarray:
        base = self.mapping.base
        if base.constant is not None:
            return np.full(3, base.constant)
        if base.cmd_vel:
            sent = self.streams.base_command.between(start_ns, end_ns)
            value = sent[-1] if sent else self.streams.base_command.in_force(start_ns - 1)
            return np.zeros(3) if value is None else np.asarray(value, dtype=float)
        delay = int(round(base.delay_s * 1e9))
        if base.use == "twist":
            samples = self.streams.odometry_twist.between(start_ns + delay, end_ns + delay)
            if samples:
                return np.mean(samples, axis=0)
            return self._interpolate(self.streams.odometry_twist, (start_ns + end_ns) // 2 + delay)
        parent, child = self.streams.odometry_frames
        try:
            before = planar_pose(*self.streams.odometry_pose.lookup(parent, child, start_ns + delay))
            after = planar_pose(*self.streams.odometry_pose.lookup(parent, child, end_ns + delay))
        except TransformError as exc:
            raise BagImportError(f"{self.streams.bag}: base: {exc}") from exc
        return planar_twist(before, after, (end_ns - start_ns) / 1e9)

    def _interpolate(self, series: Series, time_ns: int) -> np.ndarray:
        try:
            return series.interpolate(time_ns, self.max_gap_ns)
        except BagImportError as exc:
            raise BagImportError(f"{self.streams.bag}: {exc}") from exc

    def actions(self, tick_times: np.ndarray) -> np.ndarray:
        space, mode = self.space, self.mapping.mode
        actions = np.zeros((len(tick_times), NUM_ACTION_DIMS))
        for k, start in enumerate(tick_times[:-1]):
            start, end = int(start), int(tick_times[k + 1])
            action = actions[k]
            action[ARM_DELTA_DIMS] = self.arm(start, end)
            action[GRIPPER_DIM] = self.gripper(start, end)
            action[BASE_DIMS] = self.base(start, end)
            if mode.constant is not None:
                moving = mode.constant == "base"
            else:
                moving = bool(np.any(np.abs(action[7:9]) > mode.linear_threshold)
                              or abs(action[9]) > mode.angular_threshold)
            if moving:
                action[ARM_DELTA_DIMS] = 0.0
                action[MODE_DIM] = space.mode_index("base")
            else:
                action[BASE_DIMS] = 0.0
                action[MODE_DIM] = space.mode_index("arm")
        last = actions[-1]
        last[GRIPPER_DIM] = actions[-2][GRIPPER_DIM] if len(actions) > 1 else 0.0
        last[MODE_DIM] = space.mode_index("terminate")
        return actions


def plan_episodes(streams: BagStreams, mapping: BagMapping, segmentation: Segmentation,
                  action_space: ActionSpaceConfig, min_steps: int = 2) -> list[PlannedEpisode]:
    """The episodes of one bag with their actions (BagImportError naming what is missing or out of range)."""
    images = streams.image_times
    origin = 0 if segmentation.absolute else images[0]
    period_ns = int(round(1e9 / mapping.rate_hz))
    computer = ActionComputer(streams, mapping, action_space)
    planned = []
    for number, segment in enumerate(segmentation.segments):
        start = images[0] if segment.start_s is None else origin + int(round(segment.start_s * 1e9))
        end = images[-1] if segment.end_s is None else origin + int(round(segment.end_s * 1e9))
        first = bisect_right(images, start - 1)
        last = bisect_right(images, end) - 1
        where = f"{streams.bag}: episode {number} ({segment.instruction!r})"
        if first > last:
            raise BagImportError(f"{where}: no image between {start / 1e9:.3f} and {end / 1e9:.3f} s on the "
                                 f"{mapping.clock} clock (images from {images[0] / 1e9:.3f} to "
                                 f"{images[-1] / 1e9:.3f} s)")
        tolerance = int(round(mapping.frame_tolerance_s * 1e9))
        ticks = np.arange(images[first], images[last] + tolerance + 1, period_ns, dtype=np.int64)
        if len(ticks) < min_steps:
            raise BagImportError(f"{where}: {len(ticks)} control tick(s) at {mapping.rate_hz:g} Hz; at least "
                                 f"{min_steps} are needed")
        indices = np.array([bisect_right(images, int(t) + tolerance) - 1 for t in ticks])
        try:
            actions = computer.actions(ticks)
        except BagImportError as exc:
            raise BagImportError(f"{where}: {exc}") from exc
        planned.append(PlannedEpisode(streams.bag, segment, ticks, indices, actions))
    return planned


def clip_actions(actions: np.ndarray, space: ActionSpaceConfig, clipped: np.ndarray) -> np.ndarray:
    continuous = actions[:, :CONTINUOUS_DIMS]
    clipped[:CONTINUOUS_DIMS] += ((continuous < space.low) | (continuous > space.high)).sum(axis=0)
    actions[:, :CONTINUOUS_DIMS] = np.clip(continuous, space.low, space.high)
    return actions.astype(np.float32)


# ---------------------------------------------------------------------------------------------------- images
def read_frames(bag: Path, mapping: BagMapping, streams: BagStreams, wanted: set[int],
                frame_size: int) -> dict[int, np.ndarray]:
    """The images at sorted positions ``wanted`` (into streams.image_times), decoded and resized."""
    from rosbags.rosbag2 import Reader

    by_order = {streams.image_order[i]: i for i in wanted}
    typestore = make_typestore()
    frames = {}
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == mapping.camera]
        for count, (connection, _, raw) in enumerate(reader.messages(connections=connections)):
            if count not in by_order:
                continue
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            try:
                if connection.msgtype.endswith("CompressedImage"):
                    rgb = decode_compressed(message.format, message.data.tobytes(), MAX_IMAGE_PIXELS)
                else:
                    rgb = decode_raw(message.height, message.width, message.encoding, bool(message.is_bigendian),
                                     message.step, message.data.tobytes(), MAX_IMAGE_PIXELS)
            except ValueError as exc:
                raise BagImportError(f"{bag}: {mapping.camera}: {exc}") from exc
            frames[by_order[count]] = resize_for_model(rgb, frame_size)
    return frames


# ---------------------------------------------------------------------------------------------------- import
@dataclass(frozen=True)
class OrdinaryImportSettings:
    frame_size: int = 112
    task_family: str = "rosbag"
    min_steps: int = 2


def plan_import(bags: list[tuple[Path, Segmentation]], mapping: BagMapping,
                action_space: ActionSpaceConfig) -> list[tuple[BagStreams, list[PlannedEpisode]]]:
    """Read and check every bag and compute every episode's actions; nothing is written."""
    return [(streams, plan_episodes(streams, mapping, segmentation, action_space))
            for streams, segmentation in ((read_streams(bag, mapping), segmentation) for bag, segmentation in bags)]


def import_bags(bags: list[tuple[Path, Segmentation]], mapping: BagMapping, output: str | Path,
                settings: OrdinaryImportSettings = OrdinaryImportSettings(), mapping_path: str = "",
                action_space: ActionSpaceConfig | None = None, log=print) -> list:
    """Import the episodes of every (bag, segmentation) into the dataset at ``output``; returns the written
    episodes. Every bag is read and checked before the first episode is written. Failed episodes are written with
    success false, which training leaves out unless asked (rt1-train successful_only)."""
    action_space = action_space or ActionSpaceConfig.from_yaml()
    plans = plan_import(bags, mapping, action_space)
    existing = open_or_empty(output)
    done = existing.existing_keys() if existing is not None else set()
    writer = EpisodeWriter(output)
    clipped = np.zeros(len(DIMENSION_NAMES), dtype=np.int64)
    written = []
    for streams, planned in plans:
        keyed = []
        for number, episode in enumerate(planned):
            family = episode.segment.task_family or settings.task_family
            seed = episode.segment.seed if episode.segment.seed is not None else number
            key = (f"rosbag:{streams.bag.name}", family, seed)
            if key not in done:
                keyed.append((episode, family, seed))
        wanted = {int(i) for episode, _, _ in keyed for i in episode.image_indices}
        frames = read_frames(streams.bag, mapping, streams, wanted, settings.frame_size) if wanted else {}
        for episode, family, seed in keyed:
            actions = clip_actions(episode.actions.copy(), action_space, clipped)
            info = EpisodeInfo(instruction=episode.segment.instruction, task_family=family, seed=seed,
                               success=episode.segment.success, source=f"rosbag:{streams.bag.name}",
                               fps=mapping.rate_hz,
                               extra={"bag": str(streams.bag.resolve()), "mapping": mapping_path,
                                      "clock": mapping.clock, "start_ns": int(episode.tick_times_ns[0]),
                                      "end_ns": int(episode.tick_times_ns[-1])})
            stacked = np.stack([frames[int(i)] for i in episode.image_indices])
            written.append(writer.write(stacked, actions, info))
    for name, count in zip(DIMENSION_NAMES, clipped):
        if count:
            log(f"  {name}: {count} value(s) outside the action-space range, clipped (config/action_space.yaml)")
    return written
