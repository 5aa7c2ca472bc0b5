"""rt1-import-bag: rosbag2 recordings (MCAP or sqlite3) -> episode dataset, with the pure-Python `rosbags` reader.

    rt1-import-bag demo_bag/ --output data/teleop --image-topic /camera/image_raw --task-family pick
    rt1-import-bag robot_bag/ --mapping config/rosbag_mapping_ordinary.yaml --instruction "pick up the red cube" \
        --output data/robot

Two ways to read a bag. Without ``--mapping``, the commands this package's nodes send (below). With ``--mapping``, a
robot's ordinary topics (/tf, /joint_states, /odom, a camera, command topics) through a declared mapping YAML
(rt1_ros.data.rosbag_mapping, rt1_ros.data.rosbag_ordinary); episodes then come from ``--instruction`` (the whole
bag is one episode), a sidecar YAML of (start, end, instruction, success) per episode (``--segments``, or
<bag>.segments.yaml beside the bag), and every bag is checked before anything is written.

Without a mapping:

What is read
* camera: sensor_msgs/Image (decoded like the node does, `decode_raw`) or sensor_msgs/CompressedImage;
* instruction: std_msgs/String; every instruction message starts a new episode (until the next one or the bag's
  end); images before the first instruction are skipped, as the policy could not have acted on them;
* the commands actually sent: geometry_msgs/Twist on the base topic and rt1_ros/msg/ArmCommand on the arm topic
  (registered with rosbags' type system from this package's msg/ArmCommand.msg, so no ROS build is needed).

Alignment (all times are the bag's receive timestamps, one clock for every topic whatever the publishers stamped)
* Control ticks run at ``--rate`` Hz from the episode's first image: t_k = t_0 + k / rate.
* Frame k is the newest image received at or before t_k.
* Action k is what was commanded in [t_k, t_{k+1}): the arm translation/rotation deltas of every ArmCommand in the
  interval are summed (each is a per-step delta, so their sum is the motion of that period) and the gripper is the
  last one sent (else the one in force); the base twist is the last Twist sent in the interval, else the one in
  force (a Twist is a velocity held until replaced).
* Mode: ``base`` when the base twist is non-zero (|v| > ``--base-threshold`` m/s or |yaw rate| > threshold rad/s),
  ``arm`` otherwise; the last tick of an episode (its final frame) is ``terminate`` with zero motion and the gripper
  held. In base mode the arm deltas are zeroed and in arm mode the base is zeroed, which is what the node does with
  a decoded action, so the recorded actions are ones the policy can reproduce.
Values are clipped to the action-space ranges (config/action_space.yaml, or ``--action-space``: a robot's
calibration of a converted release, whose ranges are scale × range + offset in the robot's units), as the tokenizer
would. Frames are stored at ``--frame-size``: a square side, or HxW (256x320 keeps the released RT-1's 4:5).
"""
from __future__ import annotations

import argparse
import sys
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rt1_ros.configuration.action_layout import ARM_DELTA_DIMS, BASE_DIMS, GRIPPER_DIM, MODE_DIM, NUM_ACTION_DIMS, ActionSpaceConfig
from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter
from rt1_ros.inference.image_decoding import decode_compressed, decode_raw, resize_for_model
from rt1_ros.configuration.yaml_config import config_dir

ARM_COMMAND_TYPE = "rt1_ros/msg/ArmCommand"
MAX_IMAGE_PIXELS = 1 << 24


def arm_command_definition() -> str:
    """msg/ArmCommand.msg beside config/ (source tree and ament share directory alike)."""
    path = config_dir().parent / "msg" / "ArmCommand.msg"
    return path.read_text(encoding="utf-8")


def make_typestore():
    """rosbags' ROS 2 type store with rt1_ros/msg/ArmCommand registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    typestore = get_typestore(Stores.ROS2_HUMBLE)
    typestore.register(get_types_from_msg(arm_command_definition(), ARM_COMMAND_TYPE))
    return typestore


@dataclass
class Timeline:
    """Messages of one topic in receive order: times (ns) and decoded payloads."""

    times: list[int] = field(default_factory=list)
    values: list = field(default_factory=list)

    def add(self, time_ns: int, value) -> None:
        self.times.append(time_ns)
        self.values.append(value)

    def sort(self) -> None:
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        self.times = [self.times[i] for i in order]
        self.values = [self.values[i] for i in order]

    def latest_at(self, time_ns: int, default=None):
        """The newest value received at or before ``time_ns``."""
        index = bisect_right(self.times, time_ns) - 1
        return self.values[index] if index >= 0 else default

    def between(self, start_ns: int, end_ns: int) -> list:
        """Values received in [start_ns, end_ns)."""
        return self.values[bisect_right(self.times, start_ns - 1):bisect_right(self.times, end_ns - 1)]


@dataclass(frozen=True)
class ImportSettings:
    image_topic: str = "/camera/image_raw"
    instruction_topic: str = "/instruction"
    cmd_vel_topic: str = "/cmd_vel"
    arm_topic: str = "/arm_command"
    rate_hz: float = 3.0
    frame_size: int | tuple[int, int] = 112  # a square side, or (height, width)
    task_family: str = "rosbag"
    success: bool = True
    base_threshold: float = 1e-3
    min_steps: int = 2
    action_space_file: str = ""  # the ranges values are clipped to; "" = config/action_space.yaml


def read_bag(path: Path, settings: ImportSettings) -> dict[str, Timeline]:
    from rosbags.rosbag2 import Reader

    typestore = make_typestore()
    timelines = {name: Timeline() for name in ("image", "instruction", "twist", "arm")}
    topic_role = {settings.image_topic: "image", settings.instruction_topic: "instruction",
                  settings.cmd_vel_topic: "twist", settings.arm_topic: "arm"}
    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic in topic_role]
        found = {c.topic for c in connections}
        for topic in (settings.image_topic, settings.instruction_topic):
            if topic not in found:
                topics = sorted(c.topic for c in reader.connections)
                raise SystemExit(f"{path}: topic {topic} not in the bag (has {topics})")
        for connection, time_ns, raw in reader.messages(connections=connections):
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            role = topic_role[connection.topic]
            if role == "image":
                timelines[role].add(time_ns, _decode_image(message, connection.msgtype, settings.frame_size))
            elif role == "instruction":
                timelines[role].add(time_ns, message.data)
            elif role == "twist":
                timelines[role].add(time_ns, np.array([message.linear.x, message.linear.y, message.angular.z]))
            else:
                timelines[role].add(time_ns, (np.array([message.translation.x, message.translation.y,
                                                        message.translation.z, message.rotation.x,
                                                        message.rotation.y, message.rotation.z]),
                                              float(message.gripper)))
    for timeline in timelines.values():
        timeline.sort()
    return timelines


def _decode_image(message, msgtype: str, frame_size: int | tuple[int, int]) -> np.ndarray:
    """-> (S,S,3) or (H,W,3) uint8, shrunk right away so a long bag does not hold full-size frames in memory."""
    if msgtype.endswith("CompressedImage"):
        rgb = decode_compressed(message.format, message.data.tobytes(), MAX_IMAGE_PIXELS)
    else:
        rgb = decode_raw(message.height, message.width, message.encoding, bool(message.is_bigendian),
                         message.step, message.data.tobytes(), MAX_IMAGE_PIXELS)
    return resize_for_model(rgb, frame_size)


@dataclass
class AlignedEpisode:
    instruction: str
    frames: np.ndarray  # (T,S,S,3) or (T,H,W,3) uint8
    actions: np.ndarray  # (T,11) float32
    tick_times_ns: np.ndarray  # (T,)


def align_episodes(timelines: dict[str, Timeline], settings: ImportSettings,
                   action_space: ActionSpaceConfig) -> list[AlignedEpisode]:
    images, instructions = timelines["image"], timelines["instruction"]
    period_ns = int(round(1e9 / settings.rate_hz))
    episodes = []
    boundaries = instructions.times + [max(images.times[-1] + 1, instructions.times[-1] + 1)] \
        if instructions.times and images.times else []
    for index, instruction in enumerate(instructions.values):
        start, end = boundaries[index], boundaries[index + 1]
        first_image = bisect_right(images.times, start - 1)
        if first_image >= len(images.times) or images.times[first_image] >= end:
            continue
        last_image_time = images.times[bisect_right(images.times, end - 1) - 1]
        tick_times = np.arange(images.times[first_image], last_image_time + 1, period_ns, dtype=np.int64)
        if len(tick_times) < settings.min_steps:
            continue
        frames = np.stack([images.latest_at(int(t)) for t in tick_times])
        actions = np.stack([_action_for_tick(timelines, int(t), int(t) + period_ns, settings, action_space)
                            for t in tick_times])
        actions[-1] = _terminate(actions[-2][GRIPPER_DIM] if len(actions) > 1 else 0.0, action_space)
        episodes.append(AlignedEpisode(instruction, frames, actions.astype(np.float32), tick_times))
    return episodes


def _action_for_tick(timelines: dict[str, Timeline], start_ns: int, end_ns: int, settings: ImportSettings,
                     action_space: ActionSpaceConfig) -> np.ndarray:
    action = np.zeros(NUM_ACTION_DIMS)
    arm_commands = timelines["arm"].between(start_ns, end_ns)
    if arm_commands:
        action[ARM_DELTA_DIMS] = np.sum([delta for delta, _ in arm_commands], axis=0)
        action[GRIPPER_DIM] = arm_commands[-1][1]
    else:
        in_force = timelines["arm"].latest_at(start_ns - 1)
        action[GRIPPER_DIM] = in_force[1] if in_force is not None else 0.0
    twists = timelines["twist"].between(start_ns, end_ns)
    twist = twists[-1] if twists else timelines["twist"].latest_at(start_ns - 1, np.zeros(3))
    moving = np.any(np.abs(twist) > settings.base_threshold)
    if moving:
        action[BASE_DIMS] = twist
        action[ARM_DELTA_DIMS] = 0.0
        action[MODE_DIM] = action_space.mode_index("base")
    else:
        action[MODE_DIM] = action_space.mode_index("arm")
    # The ranges in the robot's units: the node sends scale × value + offset of the decoded values.
    ends = np.stack([action_space.onto_robot(action_space.low), action_space.onto_robot(action_space.high)])
    action[:MODE_DIM] = np.clip(action[:MODE_DIM], ends.min(axis=0), ends.max(axis=0))
    return action


def _terminate(gripper: float, action_space: ActionSpaceConfig) -> np.ndarray:
    action = np.zeros(NUM_ACTION_DIMS)
    action[GRIPPER_DIM] = gripper
    action[MODE_DIM] = action_space.mode_index("terminate")
    return action


def import_bag(bag: str | Path, output: str | Path, settings: ImportSettings = ImportSettings()) -> list:
    """Import every instruction segment of ``bag`` into the dataset at ``output``; returns the written episodes."""
    bag = Path(bag)
    action_space = ActionSpaceConfig.from_yaml(settings.action_space_file or None)
    aligned = align_episodes(read_bag(bag, settings), settings, action_space)
    writer = EpisodeWriter(output)
    written = []
    for number, episode in enumerate(aligned):
        info = EpisodeInfo(instruction=episode.instruction, task_family=settings.task_family, seed=number,
                           success=settings.success, source=f"rosbag:{bag.name}", fps=settings.rate_hz,
                           extra={"bag": str(bag.resolve()), "start_ns": int(episode.tick_times_ns[0]),
                                  "end_ns": int(episode.tick_times_ns[-1])})
        written.append(writer.write(episode.frames, episode.actions, info))
    return written


def frame_size_argument(text: str) -> int | tuple[int, int]:
    """"112" -> 112, "256x320" -> (256, 320)."""
    try:
        sizes = [int(part) for part in text.lower().split("x")]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected a side or HxW in pixels (112, 256x320), got {text!r}")
    return sizes[0] if len(sizes) == 1 else (sizes[0], sizes[1])


def main_with_mapping(args, parser) -> int:
    """rt1-import-bag --mapping: the ordinary-topics import (every bag checked before anything is written)."""
    from rt1_ros.data.rosbag_mapping import MappingError, load_mapping
    from rt1_ros.data.bag_segments import BagImportError, load_segments, sidecar_path, whole_bag
    from rt1_ros.data.rosbag_ordinary import OrdinaryImportSettings, import_bags

    legacy = [flag for flag, value in (("--image-topic", args.image_topic), ("--instruction-topic",
              args.instruction_topic), ("--cmd-vel-topic", args.cmd_vel_topic), ("--arm-topic", args.arm_topic),
              ("--rate", args.rate), ("--base-threshold", args.base_threshold)) if value is not None]
    if legacy:
        parser.error(f"{', '.join(legacy)}: with --mapping, the mapping YAML names the topics and the rate")
    if args.action_space:
        parser.error("--action-space goes without --mapping: the mapping import clips to config/action_space.yaml")
    if args.segments and len(args.bags) > 1:
        parser.error("--segments describes one bag; for several, put <bag>.segments.yaml beside each")
    if args.segments and args.instruction:
        parser.error("give --instruction (the whole bag is one episode) or --segments, not both")
    try:
        mapping = load_mapping(args.mapping)
        bags = []
        for bag in args.bags:
            bag = Path(bag.rstrip("/"))
            beside = sidecar_path(bag)
            if args.segments:
                segmentation = load_segments(args.segments)
            elif args.instruction:
                segmentation = whole_bag(args.instruction, success=not args.failed)
            elif beside.is_file():
                segmentation = load_segments(beside)
            else:
                raise BagImportError(f"{bag}: no instruction: give --instruction, --segments, or a sidecar {beside}")
            bags.append((bag, segmentation))
        settings = OrdinaryImportSettings(frame_size=args.frame_size or 112, task_family=args.task_family)
        episodes = import_bags(bags, mapping, args.output, settings, mapping_path=str(args.mapping))
    except (MappingError, BagImportError, ValueError) as exc:
        print(f"rt1-import-bag: {exc}", file=sys.stderr)
        return 2
    failed = sum(not e.info.success for e in episodes)
    print(f"{len(args.bags)} bag(s): {len(episodes)} episode(s) ({failed} marked failed: training leaves them out "
          f"unless successful_only=false), {sum(e.info.num_steps for e in episodes)} steps -> {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-import-bag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="+", help="rosbag2 directories (MCAP or sqlite3; detected from metadata.yaml)")
    parser.add_argument("--output", required=True, help="dataset directory (created; appended to)")
    defaults = ImportSettings()
    parser.add_argument("--mapping", help="mapping YAML from a robot's ordinary topics (e.g. "
                        "config/rosbag_mapping_ordinary.yaml); without it, this package's own command topics")
    parser.add_argument("--instruction", help="with --mapping: the whole bag is one episode with this instruction")
    parser.add_argument("--segments", help="with --mapping: sidecar YAML of (start, end, instruction, success) per "
                        "episode (default: <bag>.segments.yaml beside the bag)")
    parser.add_argument("--image-topic", help=f"default {defaults.image_topic}")
    parser.add_argument("--instruction-topic", help=f"default {defaults.instruction_topic}")
    parser.add_argument("--cmd-vel-topic", help=f"default {defaults.cmd_vel_topic}")
    parser.add_argument("--arm-topic", help=f"default {defaults.arm_topic}")
    parser.add_argument("--rate", type=float, help=f"control rate of the policy, Hz (default {defaults.rate_hz:g})")
    parser.add_argument("--frame-size", type=frame_size_argument, default=defaults.frame_size,
                        help="stored frame size: a square side, or HxW (e.g. 256x320)")
    parser.add_argument("--task-family", default=defaults.task_family)
    parser.add_argument("--failed", action="store_true", help="mark the imported episodes as unsuccessful")
    parser.add_argument("--base-threshold", type=float, help=f"default {defaults.base_threshold:g}")
    parser.add_argument("--action-space", default="", help="action space YAML whose ranges values are clipped to "
                        "(rt1_node's action_space_file); default config/action_space.yaml")
    args = parser.parse_args(argv)
    if args.mapping:
        return main_with_mapping(args, parser)
    if args.instruction or args.segments:
        parser.error("--instruction and --segments go with --mapping; without it, the instruction topic segments")
    args.image_topic = args.image_topic or defaults.image_topic
    args.instruction_topic = args.instruction_topic or defaults.instruction_topic
    args.cmd_vel_topic = args.cmd_vel_topic or defaults.cmd_vel_topic
    args.arm_topic = args.arm_topic or defaults.arm_topic
    args.rate = args.rate if args.rate is not None else defaults.rate_hz
    args.base_threshold = args.base_threshold if args.base_threshold is not None else defaults.base_threshold
    settings = ImportSettings(image_topic=args.image_topic, instruction_topic=args.instruction_topic,
                              cmd_vel_topic=args.cmd_vel_topic, arm_topic=args.arm_topic, rate_hz=args.rate,
                              frame_size=args.frame_size, task_family=args.task_family, success=not args.failed,
                              base_threshold=args.base_threshold, action_space_file=args.action_space)
    for bag in args.bags:
        episodes = import_bag(bag, args.output, settings)
        steps = sum(e.info.num_steps for e in episodes)
        print(f"{bag}: {len(episodes)} episode(s), {steps} steps -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
