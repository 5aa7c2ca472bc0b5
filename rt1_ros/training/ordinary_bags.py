"""rt1-sim-bags: scripted-expert episodes recorded as the rosbag2 a real robot's ordinary topics would give, and a
per-dimension comparison of what `rt1-import-bag --mapping` makes of them with what the expert commanded.

    rt1-sim-bags record --output bags/sim --families pick push move_near --episodes-per-family 20
    rt1-import-bag bags/sim/*/ --mapping config/rosbag_mapping_ordinary.yaml --output data/sim_bags --frame-size 144
    rt1-sim-bags compare --bags bags/sim --dataset data/sim_bags

`record` steps the simulator as sim_node does in lockstep (one expert action per control period, state published
at the node's ``state_rate_hz`` while it advances) and writes, with the rosbags writer (MCAP), what sim_node
publishes: camera/image_raw (sensor_msgs/Image rgb8, or CompressedImage with --image-format png|jpeg), tf and
tf_static (rt1_ros.sim.robot_frames: odom -> base_link, base_link -> arm_base_link -> gripper, base_link ->
head_camera), joint_states, odom, end_effector_pose (geometry_msgs/PoseStamped, base_link), instruction, and the
expert's cmd_vel. Stamps are simulation time and each message's bag time equals its stamp. After a terminate the
robot keeps publishing its state for ``--tail-s`` (a robot does not stop its drivers when an episode ends), so the
last step's motion is measured in full. Beside each bag <name>/: <name>.segments.yaml (the episode's start, end,
instruction and success, on the header clock, for rt1-import-bag) and <name>.expert_actions.npz (per episode, keyed
by its first image's stamp in ns: (T, 11) float32, what the expert commanded at each of its T images; for
`compare`). Seeds come from the train range only, as rt1-generate's; failed expert episodes are kept (success: false
in the sidecar) only with --keep-failed.

`compare` matches each imported episode to its bag's expert actions and reports per dimension the largest and the
95th-percentile absolute error (arm dimensions over the expert's arm steps, base dimensions over its base steps,
the gripper over every moving step) and the fraction of steps whose mode agrees, against ORDINARY_TOPIC_TOLERANCE.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from rt1_ros.configuration.action_layout import BASE_DIMS, MODE_DIM, ActionSpaceConfig
from rt1_ros.training.ordinary_bag_comparison import EXPERT_SUFFIX, compare_actions, imported_pairs

SEGMENTS_SUFFIX = ".segments.yaml"
IMAGE_FORMATS = ("raw", "png", "jpeg")
SECOND = 1_000_000_000


@dataclass(frozen=True)
class RecordSettings:
    image_format: str = "raw"  # raw | png | jpeg
    jpeg_quality: int = 95
    tail_s: float = 0.5
    max_steps: int = 0  # 0 = the family's budget
    image_size: tuple[int, int] | None = None  # (width, height); None: sim_node's camera_width x camera_height


@dataclass
class RecordedEpisode:
    family: str
    seed: int
    instruction: str
    success: bool
    start_ns: int  # the first image's stamp
    end_ns: int  # the last image's stamp
    actions: np.ndarray  # (T, 11): the expert's action at each image


def _latched_qos():
    """rosbags' Qos of a latched topic (reliable, transient local, depth 1), so `ros2 bag play` replays tf_static and
    the instruction to late subscribers as the node does."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unspecified = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=unspecified, lifespan=unspecified,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=unspecified,
               avoid_ros_namespace_conventions=False)


class OrdinaryTopicWriter:
    """Writes what sim_node publishes, as rosbags messages, into an open rosbags Writer."""

    def __init__(self, writer, sim, settings: RecordSettings) -> None:
        from rosbags.typesys import Stores, get_typestore

        self.writer, self.sim, self.settings = writer, sim, settings
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self.types = self.typestore.types
        node = sim.config.node
        self.odom_frame, self.base_frame, self.camera_frame = node.odom_frame, node.base_frame, node.camera_frame
        image_type = "sensor_msgs/msg/Image" if settings.image_format == "raw" else "sensor_msgs/msg/CompressedImage"
        latched = [_latched_qos()]
        topics = {"/camera/image_raw": (image_type, ()), "/tf": ("tf2_msgs/msg/TFMessage", ()),
                  "/tf_static": ("tf2_msgs/msg/TFMessage", latched),
                  "/joint_states": ("sensor_msgs/msg/JointState", ()), "/odom": ("nav_msgs/msg/Odometry", ()),
                  "/end_effector_pose": ("geometry_msgs/msg/PoseStamped", ()),
                  "/instruction": ("std_msgs/msg/String", latched), "/cmd_vel": ("geometry_msgs/msg/Twist", ())}
        self.connections = {topic: writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                         offered_qos_profiles=qos)
                            for topic, (msgtype, qos) in topics.items()}

    def _write(self, topic: str, time_ns: int, message) -> None:
        self.writer.write(self.connections[topic], time_ns,
                          self.typestore.serialize_cdr(message, type(message).__msgtype__))

    def _header(self, time_ns: int, frame: str = ""):
        types = self.types
        stamp = types["builtin_interfaces/msg/Time"](sec=time_ns // SECOND, nanosec=time_ns % SECOND)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    def _vector(self, values):
        return self.types["geometry_msgs/msg/Vector3"](x=float(values[0]), y=float(values[1]), z=float(values[2]))

    def _quaternion(self, xyzw):
        x, y, z, w = (float(v) for v in xyzw)
        return self.types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)

    def _transforms(self, transforms, time_ns: int):
        types = self.types
        return types["tf2_msgs/msg/TFMessage"](transforms=[
            types["geometry_msgs/msg/TransformStamped"](
                header=self._header(time_ns, t.parent), child_frame_id=t.child,
                transform=types["geometry_msgs/msg/Transform"](translation=self._vector(t.translation),
                                                               rotation=self._quaternion(t.rotation)))
            for t in transforms])

    def static(self, time_ns: int) -> None:
        from rt1_ros.sim.robot_frames import static_transforms

        self._write("/tf_static", time_ns,
                    self._transforms(static_transforms(self.sim, self.base_frame, self.camera_frame), time_ns))

    def instruction(self, text: str, time_ns: int) -> None:
        self._write("/instruction", time_ns, self.types["std_msgs/msg/String"](data=text))

    def state(self, time_ns: int) -> None:
        """tf, joint_states, odom and end_effector_pose, as sim_node's _publish_state."""
        from rt1_ros.sim.robot_frames import dynamic_transforms, end_effector_pose

        types, sim = self.types, self.sim
        self._write("/tf", time_ns, self._transforms(dynamic_transforms(sim, self.odom_frame, self.base_frame),
                                                     time_ns))
        joints = sim.joint_states()
        self._write("/joint_states", time_ns, types["sensor_msgs/msg/JointState"](
            header=self._header(time_ns), name=list(joints.names), position=joints.positions.astype(np.float64),
            velocity=joints.velocities.astype(np.float64), effort=joints.efforts.astype(np.float64)))
        odometry = sim.odometry()
        covariance = np.zeros(36)
        pose = types["geometry_msgs/msg/PoseWithCovariance"](
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=odometry.x, y=odometry.y, z=0.0),
                orientation=self._quaternion((0.0, 0.0, math.sin(odometry.yaw / 2), math.cos(odometry.yaw / 2)))),
            covariance=covariance)
        twist = types["geometry_msgs/msg/TwistWithCovariance"](
            twist=types["geometry_msgs/msg/Twist"](linear=self._vector((odometry.vx, odometry.vy, 0.0)),
                                                   angular=self._vector((0.0, 0.0, odometry.yaw_rate))),
            covariance=covariance)
        self._write("/odom", time_ns, types["nav_msgs/msg/Odometry"](
            header=self._header(time_ns, self.odom_frame), child_frame_id=self.base_frame, pose=pose, twist=twist))
        position, quaternion = end_effector_pose(sim)
        self._write("/end_effector_pose", time_ns, types["geometry_msgs/msg/PoseStamped"](
            header=self._header(time_ns, self.base_frame),
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=float(position[0]), y=float(position[1]),
                                                          z=float(position[2])),
                orientation=self._quaternion(quaternion))))

    def image(self, time_ns: int) -> None:
        import cv2

        node = self.sim.config.node
        width, height = self.settings.image_size or (node.camera_width, node.camera_height)
        rgb = self.sim.render(width, height)
        header = self._header(time_ns, self.camera_frame)
        if self.settings.image_format == "raw":
            message = self.types["sensor_msgs/msg/Image"](
                header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                step=rgb.shape[1] * 3, data=np.ascontiguousarray(rgb).reshape(-1))
        else:
            extension = ".png" if self.settings.image_format == "png" else ".jpg"
            parameters = [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality] if extension == ".jpg" else []
            ok, encoded = cv2.imencode(extension, rgb[:, :, ::-1], parameters)
            if not ok:
                raise RuntimeError(f"{extension} encoding failed")
            # image_transport's `compressed` format string: the raw encoding, then what was compressed.
            message = self.types["sensor_msgs/msg/CompressedImage"](
                header=header, format=f"rgb8; {self.settings.image_format} compressed bgr8",
                data=np.frombuffer(encoded.tobytes(), dtype=np.uint8))
        self._write("/camera/image_raw", time_ns, message)

    def cmd_vel(self, twist, time_ns: int) -> None:
        self._write("/cmd_vel", time_ns, self.types["geometry_msgs/msg/Twist"](
            linear=self._vector((twist[0], twist[1], 0.0)), angular=self._vector((0.0, 0.0, twist[2]))))


def _now_ns(sim) -> int:
    return round(sim.sim_time * SECOND)


def _advance(sim, topics: OrdinaryTopicWriter, end_time: float) -> None:
    """Advance to sim time ``end_time`` in state-rate chunks, writing the state after each (sim_node._advance_to)."""
    chunk = 1.0 / sim.config.node.state_rate_hz
    half_step = sim.model.opt.timestep / 2
    while end_time - sim.sim_time > half_step:
        sim.advance(min(chunk, end_time - sim.sim_time))
        topics.state(_now_ns(sim))


def record_episode(sim, topics: OrdinaryTopicWriter, family: str, seed: int, action_space: ActionSpaceConfig,
                   settings: RecordSettings) -> RecordedEpisode:
    """Reset to (family, seed), let the scripted expert act once per control period and write the topics."""
    from rt1_ros.sim.episode import apply_rt1_action
    from rt1_ros.sim.experts import ScriptedExpert

    task = sim.reset(family, seed)
    expert = ScriptedExpert(sim, action_space)
    expert.reset(task)
    period = sim.config.physics.control_period_s
    max_steps = settings.max_steps or sim.config.tasks.family(task.family).max_steps
    start_time = sim.sim_time
    start_ns = _now_ns(sim)
    topics.static(start_ns)
    topics.instruction(task.instruction, start_ns)
    topics.state(start_ns)  # the state at the first image (sim_node publishes it with the first image, too)
    actions = []
    image_ns = start_ns
    base_mode = action_space.mode_index("base")
    for step in range(max_steps):
        image_ns = _now_ns(sim)
        topics.image(image_ns)
        action = np.asarray(expert.act(), dtype=float)
        actions.append(action)
        moving = int(round(action[MODE_DIM])) == base_mode
        topics.cmd_vel(action[BASE_DIMS] if moving else np.zeros(3), image_ns)
        if apply_rt1_action(sim, action, action_space):
            break
        _advance(sim, topics, start_time + (step + 1) * period)
    _advance(sim, topics, sim.sim_time + settings.tail_s)
    return RecordedEpisode(family=task.family, seed=seed, instruction=task.instruction, success=bool(sim.success()),
                           start_ns=start_ns, end_ns=image_ns, actions=np.array(actions, dtype=np.float32))


def bag_name(family: str, seed: int) -> str:
    return f"{family}_{seed:05d}"


def segments_data(episodes: list[RecordedEpisode]) -> dict:
    """The sidecar rt1-import-bag reads (rt1_ros.data.bag_segments.parse_segments), on the header clock."""
    return {"time_base": "absolute", "episodes": [
        {"start": e.start_ns / SECOND, "end": e.end_ns / SECOND, "instruction": e.instruction, "success": e.success,
         "task_family": e.family, "seed": e.seed} for e in episodes]}


def write_bag(sim, path: Path, jobs: list[tuple[str, int]], action_space: ActionSpaceConfig,
              settings: RecordSettings = RecordSettings()) -> list[RecordedEpisode]:
    """Record the expert episodes ``jobs`` [(family, seed), ...] back to back into one bag at ``path`` (MCAP), its
    sidecar <path>.segments.yaml and <path>.expert_actions.npz (each episode's actions, keyed by its start in ns)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = Path(path)
    if settings.image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {settings.image_format!r} is not one of {IMAGE_FORMATS}")
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        topics = OrdinaryTopicWriter(writer, sim, settings)
        episodes = [record_episode(sim, topics, family, seed, action_space, settings) for family, seed in jobs]
    sidecar = path.parent / (path.name + SEGMENTS_SUFFIX)
    sidecar.write_text(yaml.safe_dump(segments_data(episodes), sort_keys=False), encoding="utf-8")
    np.savez(path.parent / (path.name + EXPERT_SUFFIX), **{str(e.start_ns): e.actions for e in episodes})
    return episodes


def record(output: str | Path, families: list[str], episodes_per_family: int, seed_start: int = 0,
           condition: str = "seen", keep_failed: bool = False, settings: RecordSettings = RecordSettings(),
           log=print) -> list[RecordedEpisode]:
    """One bag per expert episode under ``output``: <family>_<seed>/ with its sidecar and expert actions. Bags
    already there are kept (a rerun with more episodes adds the missing seeds); failed episodes' bags are removed
    unless ``keep_failed``."""
    import shutil

    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim
    from rt1_ros.training.demonstrations import check_training_seeds

    check_training_seeds(seed_start, episodes_per_family)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    action_space = ActionSpaceConfig.from_yaml()
    sim = MobileManipulatorSim(condition=condition)
    recorded = []
    try:
        for seed in range(seed_start, seed_start + episodes_per_family):
            for family in families:
                path = output / bag_name(family, seed)
                if (path / "metadata.yaml").is_file() or (output / (path.name + ".failed")).is_file():
                    continue
                if path.exists():
                    shutil.rmtree(path)  # an interrupted recording
                started = time.perf_counter()
                episode = write_bag(sim, path, [(family, seed)], action_space, settings)[0]
                if not episode.success and not keep_failed:
                    shutil.rmtree(path)
                    for suffix in (SEGMENTS_SUFFIX, EXPERT_SUFFIX):
                        (output / (path.name + suffix)).unlink()
                    (output / (path.name + ".failed")).touch()  # not recorded again by a rerun
                recorded.append(episode)
                log(f"{path.name}: {len(episode.actions)} steps, {'success' if episode.success else 'failure'}, "
                    f"{time.perf_counter() - started:.1f} s")
    finally:
        sim.close()
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-sim-bags", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="expert episodes -> one ordinary-topics bag each")
    rec.add_argument("--output", required=True, help="directory for the bags (created; existing bags are kept)")
    rec.add_argument("--families", nargs="+", default=["pick", "push", "move_near"])
    rec.add_argument("--episodes-per-family", type=int, default=10)
    rec.add_argument("--seed-start", type=int, default=0)
    rec.add_argument("--condition", default="seen", help="scene condition (config/sim.yaml conditions)")
    rec.add_argument("--image-format", choices=IMAGE_FORMATS, default="raw",
                     help="raw: sensor_msgs/Image rgb8; png or jpeg: sensor_msgs/CompressedImage")
    rec.add_argument("--tail-s", type=float, default=RecordSettings.tail_s,
                     help="seconds of state recorded after each episode's terminate")
    rec.add_argument("--keep-failed", action="store_true", help="keep bags of episodes the expert failed")
    cmp = commands.add_parser("compare", help="imported actions vs the expert's, per dimension")
    cmp.add_argument("--bags", required=True, help="the directory `record` wrote")
    cmp.add_argument("--dataset", required=True, help="the dataset rt1-import-bag wrote from those bags")
    args = parser.parse_args(argv)
    if args.command == "record":
        from rt1_ros.sim.config import SimConfig

        config = SimConfig.from_yaml()
        try:
            config.condition(args.condition)
            for family in args.families:
                config.tasks.family(family)
        except KeyError as exc:
            parser.error(str(exc).strip('"'))
        settings = RecordSettings(image_format=args.image_format, tail_s=args.tail_s)
        started = time.perf_counter()
        try:
            episodes = record(args.output, args.families, args.episodes_per_family, args.seed_start, args.condition,
                              args.keep_failed, settings)
        except ValueError as exc:
            parser.error(str(exc))
        print(f"{len(episodes)} episode(s) recorded ({sum(e.success for e in episodes)} successful) in "
              f"{time.perf_counter() - started:.0f} s -> {args.output}")
        return 0
    pairs = imported_pairs(args.bags, args.dataset)
    if not pairs:
        print(f"no episode of {args.dataset} comes from a bag under {args.bags}", file=sys.stderr)
        return 2
    comparison = compare_actions(pairs, ActionSpaceConfig.from_yaml())
    print(comparison.table())
    return 0 if comparison.within else 1


if __name__ == "__main__":
    sys.exit(main())
