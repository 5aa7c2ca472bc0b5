"""What an ordinary-topics import reads from one rosbag2 under a mapping: every mapped stream (transforms, joints,
odometry, commands) as time series, the camera's image times, checked against what the mapping names; and the frames
at chosen images, decoded and resized."""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rt1_ros.configuration.yaml_config import short_repr
from rt1_ros.data.bag_segments import BagImportError
from rt1_ros.data.rosbag_mapping import BagMapping
from rt1_ros.data.transform_tree import TransformError, TransformTree
from rt1_ros.inference.image_decoding import decode_compressed, decode_raw, resize_for_model

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
TF_TYPE = "tf2_msgs/msg/TFMessage"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
TWIST_TYPES = ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped")
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
MAX_IMAGE_PIXELS = 1 << 24


def pose_frame(topic: str) -> str:
    """The frame name a pose topic's poses get in the transform tree (no TF frame looks like it)."""
    return f"pose_topic:{topic}"


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
