"""rt1-import-bag --mapping: a robot's ordinary topics (tf, joint_states, odom, command topics) -> RT-1 actions.

The bags here are written with rosbags' writer from a motion designed per control tick, so each tick's expected
action is known exactly: the import must return it to rounding, through a static + dynamic TF chain whose static
part is rotated, and must refuse by name whatever the mapping names and the bag lacks, before writing anything."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.data.dataset import EpisodeDataset
from rt1_ros.data.rosbag_import import main as import_main
from rt1_ros.data.rosbag_mapping import MappingError, parse_mapping
from rt1_ros.data.rosbag_ordinary import (BagImportError, import_bags, parse_segments, read_streams, sidecar_path,
                                          whole_bag)
from rt1_ros.data.transform_tree import (TransformError, TransformTree, matrix_to_quaternion, planar_twist,
                                         roll_pitch_yaw_delta)
from rt1_ros.sim.mobile_manipulator import rotation_about_axes

SECOND = 1_000_000_000
T0 = 100 * SECOND
PERIOD = SECOND // 3
TICKS = 6
SUBSAMPLES = 10  # state samples per tick, on the tick boundaries too, so piecewise-linear motion interpolates exactly
MOUNT = (np.array([0.1, 0.0, 0.3]), rotation_about_axes(0.0, 0.0, math.pi / 2))  # base_link -> arm_base (static)
BASE_TWIST = np.array([0.2, 0.05, 0.3])  # ticks 0 and 1: the base drives
ARM_DELTAS = {2: np.array([0.02, -0.01, 0.0, 0.0, 0.0, 0.1]), 3: np.array([0.0, 0.0, -0.03, 0.0, 0.0, 0.0]),
              4: np.array([0.01, 0.01, 0.01, 0.0, 0.0, -0.05])}  # base_link, per tick
GRIPPER = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # closes during tick 3
FINGER_OPEN = 0.04
DOWN = np.diag([1.0, -1.0, -1.0])


def tick_time(k: float) -> int:
    return T0 + int(round(k * PERIOD))


def tool_pose(k: float) -> tuple[np.ndarray, np.ndarray]:
    """The tool in base_link at tick time k (fractional): piecewise linear position, yaw piecewise linear."""
    position, yaw = np.array([0.5, 0.0, 0.9]), 0.0
    for tick in range(TICKS):
        fraction = min(max(k - tick, 0.0), 1.0)
        delta = ARM_DELTAS.get(tick, np.zeros(6))
        position = position + fraction * delta[:3]
        yaw += fraction * delta[5]
    return position, rotation_about_axes(0.0, 0.0, yaw) @ DOWN


def base_pose(k: float) -> tuple[float, float, float]:
    """The base in odom: a constant body twist for ticks 0-2, then at rest (an arc of a circle)."""
    seconds = min(k, 2.0) * PERIOD / SECOND
    vx, vy, wz = BASE_TWIST
    theta = wz * seconds
    a, b = math.sin(theta) / wz, (1 - math.cos(theta)) / wz
    return a * vx - b * vy, b * vx + a * vy, theta


def finger(k: float) -> float:
    closing = min(max(k - 3.0, 0.0), 1.0)
    return FINGER_OPEN * (1.0 - closing)


def expected_actions() -> np.ndarray:
    actions = np.zeros((TICKS, 11))
    for k in range(TICKS - 1):
        actions[k, 6] = GRIPPER[k]
        if k < 2:
            actions[k, 7:10] = BASE_TWIST
            actions[k, 10] = 1
        else:
            actions[k, :6] = ARM_DELTAS.get(k, np.zeros(6))
    actions[-1, 6], actions[-1, 10] = GRIPPER[-2], 2
    return actions


def write_bag(path: Path, compressed: bool = False, skip_topics: tuple[str, ...] = (),
              odometry_topic: str = "/odom") -> Path:
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types

    def header(time_ns: int, frame: str = ""):
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
            sec=time_ns // SECOND, nanosec=time_ns % SECOND), frame_id=frame)

    def vector(v):
        return types["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def quaternion(rotation):
        x, y, z, w = matrix_to_quaternion(rotation)
        return types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)

    def transform(time_ns, parent, child, rotation, translation):
        return types["geometry_msgs/msg/TransformStamped"](
            header=header(time_ns, parent), child_frame_id=child,
            transform=types["geometry_msgs/msg/Transform"](translation=vector(translation),
                                                           rotation=quaternion(rotation)))

    def twist_stamped(time_ns, linear, angular):
        return types["geometry_msgs/msg/TwistStamped"](header=header(time_ns, "base_link"), twist=types[
            "geometry_msgs/msg/Twist"](linear=vector(linear), angular=vector(angular)))

    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    topics = {"/camera": image_type, "/tf": "tf2_msgs/msg/TFMessage", "/tf_static": "tf2_msgs/msg/TFMessage",
              "/joint_states": "sensor_msgs/msg/JointState", odometry_topic: "nav_msgs/msg/Odometry",
              "/servo": "geometry_msgs/msg/TwistStamped", "/cmd_vel": "geometry_msgs/msg/TwistStamped",
              "/gripper_command": "std_msgs/msg/Float64"}
    messages = []
    mount_translation, mount_rotation = MOUNT
    messages.append((T0 - SECOND, "/tf_static", types["tf2_msgs/msg/TFMessage"](
        transforms=[transform(T0 - SECOND, "base_link", "arm_base", mount_rotation, mount_translation)])))
    for j in range(-2, TICKS * SUBSAMPLES + 5):
        k = j / SUBSAMPLES
        time_ns = tick_time(k)
        position, rotation = tool_pose(k)
        x, y, yaw = base_pose(k)
        # The tool in arm_base: the static mount undone, as robot_state_publisher would publish the arm's links.
        in_mount = (mount_rotation.T @ rotation, mount_rotation.T @ (position - mount_translation))
        messages.append((time_ns, "/tf", types["tf2_msgs/msg/TFMessage"](transforms=[
            transform(time_ns, "odom", "base_link", rotation_about_axes(0, 0, yaw), (x, y, 0.0)),
            transform(time_ns, "arm_base", "tool", *in_mount)])))
        messages.append((time_ns, "/joint_states", types["sensor_msgs/msg/JointState"](
            header=header(time_ns), name=["wrist", "finger_a", "finger_b"],
            position=np.array([0.3, finger(k), finger(k)]), velocity=np.zeros(3), effort=np.zeros(3))))
        odometry = types["nav_msgs/msg/Odometry"](
            header=header(time_ns, "odom"), child_frame_id="base_link",
            pose=types["geometry_msgs/msg/PoseWithCovariance"](pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
                orientation=quaternion(rotation_about_axes(0, 0, yaw))), covariance=np.zeros(36)),
            twist=types["geometry_msgs/msg/TwistWithCovariance"](twist=types["geometry_msgs/msg/Twist"](
                linear=vector((*BASE_TWIST[:2], 0.0) if k < 2 else (0, 0, 0)),
                angular=vector((0, 0, BASE_TWIST[2] if k < 2 else 0.0))), covariance=np.zeros(36)))
        messages.append((time_ns, odometry_topic, odometry))
    for k in range(TICKS):
        time_ns = tick_time(k)
        # Tick k's image shows k in its pixels, so which image a tick took is readable.
        pixels = np.full((24, 32, 3), 40 * k, dtype=np.uint8)
        if compressed:
            encoded = cv2.imencode(".png", pixels)[1]
            image = types["sensor_msgs/msg/CompressedImage"](header=header(time_ns, "camera"), format="png",
                                                             data=np.frombuffer(encoded.tobytes(), np.uint8))
        else:
            image = types["sensor_msgs/msg/Image"](header=header(time_ns, "camera"), height=24, width=32,
                                                   encoding="rgb8", is_bigendian=0, step=96, data=pixels.reshape(-1))
        messages.append((time_ns, "/camera", image))
        # The commands that made the motion: velocities held for the tick, the gripper's closedness.
        delta = ARM_DELTAS.get(k, np.zeros(6)) * (SECOND / PERIOD)
        messages.append((time_ns, "/servo", twist_stamped(time_ns, delta[:3], delta[3:])))
        base = BASE_TWIST if k < 2 else np.zeros(3)
        messages.append((time_ns, "/cmd_vel", twist_stamped(time_ns, (base[0], base[1], 0), (0, 0, base[2]))))
        messages.append((time_ns, "/gripper_command", types["std_msgs/msg/Float64"](data=GRIPPER[k])))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                       for topic, msgtype in topics.items() if topic not in skip_topics}
        for time_ns, topic, message in sorted(messages, key=lambda m: m[0]):
            if topic in connections:
                writer.write(connections[topic], time_ns, typestore.serialize_cdr(message, message.__msgtype__))
    return path


MEASURED = {
    "clock": "header", "rate_hz": 3.0, "camera": "/camera",
    "arm": {"frame": "base_link", "end_effector_frame": "tool"},
    "gripper": {"joints": {"finger_a": {"open": FINGER_OPEN, "closed": 0.0},
                           "finger_b": {"open": FINGER_OPEN, "closed": 0.0}}},
    "base": {"odometry": "/odom", "use": "pose"},
    "mode": {"from": "base_motion", "linear_threshold": 0.01, "angular_threshold": 0.01},
}
COMMANDED = {
    "clock": "receive", "rate_hz": 3.0, "camera": "/camera",
    "arm": {"frame": "base_link", "twist_topic": "/servo"},
    "gripper": {"topic": "/gripper_command", "field": "data"},
    "base": {"cmd_vel": "/cmd_vel"},
    "mode": {"from": "base_motion"},
}


def with_changes(mapping: dict, **changes) -> dict:
    changed = {key: dict(value) if isinstance(value, dict) else value for key, value in mapping.items()}
    for key, value in changes.items():
        group, _, name = key.partition("__")
        if name:
            changed[group][name] = value
        elif value is None:
            changed.pop(group)
        else:
            changed[group] = value
    return changed


def import_one(tmp_path: Path, mapping: dict, bag: Path, segmentation=None) -> list:
    output = tmp_path / "dataset"
    return import_bags([(bag, segmentation or whole_bag("pick up the red cube"))], parse_mapping(mapping), output,
                       action_space=ActionSpaceConfig.from_yaml(), log=lambda _: None)


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return write_bag(tmp_path_factory.mktemp("bags") / "robot")


def test_rotation_deltas_invert_how_the_simulator_applies_them():
    rng = np.random.default_rng(0)
    for _ in range(50):
        before = rotation_about_axes(*rng.uniform(-math.pi, math.pi, 3))
        delta = rng.uniform(-0.25, 0.25, 3)
        after = rotation_about_axes(*delta) @ before
        np.testing.assert_allclose(roll_pitch_yaw_delta(before, after), delta, atol=1e-12)


def test_planar_twist_recovers_a_constant_body_twist():
    x, y, yaw = 1.0, -2.0, 0.7
    twist, seconds = np.array([0.3, -0.1, 0.8]), 0.5
    theta = twist[2] * seconds
    a, b = math.sin(theta) / twist[2], (1 - math.cos(theta)) / twist[2]
    local = np.array([a * twist[0] - b * twist[1], b * twist[0] + a * twist[1]])
    c, s = math.cos(yaw), math.sin(yaw)
    after = (x + c * local[0] - s * local[1], y + s * local[0] + c * local[1], yaw + theta)
    np.testing.assert_allclose(planar_twist((x, y, yaw), after, seconds), twist, atol=1e-12)
    # A straight displacement over the chord would read vy != 0 here: the arc matters.
    assert abs(local[1] / seconds - twist[1]) > 0.05


def test_transform_tree_chains_static_and_dynamic_and_names_what_is_missing():
    tree = TransformTree(max_gap_ns=SECOND // 4)
    mount_translation, mount_rotation = MOUNT
    tree.add("base_link", "arm_base", 0, mount_translation, matrix_to_quaternion(mount_rotation), True, "/tf_static")
    for time_ns, x in ((0, 0.0), (SECOND // 10, 0.1)):
        tree.add("arm_base", "tool", time_ns, (x, 0.0, 0.0), (0, 0, 0, 1), False, "/tf")
    tree.add("map", "elsewhere", 0, (0, 0, 0), (0, 0, 0, 1), True, "/tf_static")
    tree.finish()
    rotation, translation = tree.lookup("base_link", "tool", SECOND // 20)
    # 0.05 m along arm_base x, which the mount turns onto base_link y.
    np.testing.assert_allclose(translation, mount_translation + [0.0, 0.05, 0.0], atol=1e-12)
    np.testing.assert_allclose(rotation, mount_rotation, atol=1e-12)
    inverse_rotation, inverse_translation = tree.lookup("tool", "base_link", SECOND // 20)
    np.testing.assert_allclose(inverse_rotation @ translation + inverse_translation, 0.0, atol=1e-12)
    with pytest.raises(TransformError, match="'grip'.*not in the bag's transforms"):
        tree.check("base_link", "grip")
    with pytest.raises(TransformError, match="not connected"):
        tree.check("base_link", "elsewhere")
    with pytest.raises(TransformError, match="arm_base -> tool.*no sample within"):
        tree.lookup("base_link", "tool", SECOND)


@pytest.mark.parametrize("compressed", [False, True])
def test_measured_topics_give_the_designed_actions(tmp_path, compressed):
    bag = write_bag(tmp_path / "robot", compressed=compressed)
    written = import_one(tmp_path, MEASURED, bag)
    assert len(written) == 1
    episode = EpisodeDataset(tmp_path / "dataset")[0]
    assert episode.info.instruction == "pick up the red cube" and episode.info.success
    np.testing.assert_array_equal(np.asarray(episode.frames)[:, 0, 0, 0], [40 * k for k in range(TICKS)])
    np.testing.assert_allclose(episode.actions, expected_actions(), atol=1e-5)


def test_commanded_topics_give_the_designed_actions(tmp_path, bag):
    import_one(tmp_path, COMMANDED, bag)
    np.testing.assert_allclose(EpisodeDataset(tmp_path / "dataset")[0].actions, expected_actions(), atol=1e-5)


def test_odometry_twist_and_constants(tmp_path, bag):
    mapping = with_changes(MEASURED, base__use="twist", arm={"constant": 0.0}, gripper={"constant": 0.0})
    actions = EpisodeDataset(tmp_path / "dataset")[0].actions if import_one(tmp_path, mapping, bag) else None
    expected = expected_actions()
    expected[:, :7] = 0.0
    np.testing.assert_allclose(actions, expected, atol=1e-5)


def test_a_wrong_frame_in_the_mapping_gives_other_actions(tmp_path, bag):
    """The exact match above can fail: the deltas expressed in arm_base (turned 90 degrees) are not base_link's."""
    import_one(tmp_path, with_changes(MEASURED, arm__frame="arm_base"), bag)
    actions = EpisodeDataset(tmp_path / "dataset")[0].actions
    assert np.max(np.abs(actions[2:5, :2] - expected_actions()[2:5, :2])) > 0.01


@pytest.mark.parametrize("change, named", [
    (dict(arm__end_effector_frame="gripper_tip"), "'gripper_tip' is not in the bag's transforms"),
    (dict(arm__frame="world"), "'world' is not in the bag's transforms"),
    (dict(gripper__joints={"finger_c": {"open": 0.04, "closed": 0.0}}), r"joint\(s\) \['finger_c'\] not in"),
    (dict(base__odometry="/wheel_odom"), "topic /wheel_odom .* is not in the bag"),
    (dict(camera="/front_camera"), "topic /front_camera .* is not in the bag"),
    (dict(base={"odometry": "/joint_states"}), "/joint_states is sensor_msgs/msg/JointState"),
])
def test_what_the_bag_lacks_is_refused_by_name_before_anything_is_written(tmp_path, bag, change, named):
    good = write_bag(tmp_path / "good")
    mapping = with_changes(MEASURED, **change)
    with pytest.raises(BagImportError, match=named):
        import_bags([(good, whole_bag("first")), (bag, whole_bag("second"))], parse_mapping(mapping),
                    tmp_path / "dataset", log=lambda _: None)
    assert not (tmp_path / "dataset").exists()


def test_a_header_clock_refuses_a_topic_without_stamps(tmp_path, bag):
    with pytest.raises(BagImportError, match="/gripper_command is std_msgs/msg/Float64, which has no header"):
        read_streams(bag, parse_mapping(with_changes(COMMANDED, clock="header")))


def test_a_tf_chain_missing_its_static_part_is_refused(tmp_path):
    bag = write_bag(tmp_path / "robot", skip_topics=("/tf_static",))
    # base_link is there (odom -> base_link), but nothing joins it to the arm's chain.
    with pytest.raises(BagImportError, match="frames 'tool' and 'base_link' are not connected .roots 'arm_base'"):
        read_streams(bag, parse_mapping(MEASURED))


@pytest.mark.parametrize("group", ["arm", "gripper", "base", "mode"])
def test_a_mapping_without_a_group_names_its_dimensions(group):
    names = {"arm": "arm_x, arm_y, arm_z, arm_roll, arm_pitch, arm_yaw", "gripper": "gripper",
             "base": "base_x, base_y, base_yaw", "mode": "mode"}[group]
    with pytest.raises(MappingError, match=f"{group}: {names} not mapped"):
        parse_mapping(with_changes(MEASURED, **{group: None}))


@pytest.mark.parametrize("change, message", [
    (dict(arm__pose_topic="/pose"), "exactly one of"),
    (dict(gripper__scale=2.0), "belong to a gripper command topic"),
    (dict(base__use="velocity"), "pose or twist"),
    (dict(mode={"constant": "terminate"}), "arm or base"),
    (dict(clock="sim"), "clock: one of"),
    (dict(arm__delay_s=-0.1), "must be >= 0"),
    (dict(extra=1), "unknown key"),
])
def test_malformed_mappings_are_refused(change, message):
    with pytest.raises(MappingError, match=message):
        parse_mapping(with_changes(MEASURED, **change))


def test_a_sidecar_splits_the_bag_and_failed_episodes_stay_out_of_training(tmp_path, bag):
    segments = parse_segments({"time_base": "first_image", "episodes": [
        {"start": 0.0, "end": 0.7, "instruction": "drive to the table", "success": True, "task_family": "move_near"},
        {"start": 0.9, "end": 5.0, "instruction": "pick up the red cube", "success": False, "seed": 7}]}, "sidecar")
    written = import_one(tmp_path, MEASURED, bag, segments)
    assert [(e.info.instruction, e.info.success, e.info.task_family, e.info.num_steps) for e in written] == [
        ("drive to the table", True, "move_near", 3), ("pick up the red cube", False, "rosbag", 3)]
    assert written[1].info.seed == 7
    first = written[0].actions
    np.testing.assert_allclose(first[:2], expected_actions()[:2], atol=1e-5)
    assert first[2, 10] == 2  # each episode ends in terminate
    assert [e.info.instruction for e in EpisodeDataset(tmp_path / "dataset", successful_only=True)] == \
        ["drive to the table"]


@pytest.mark.parametrize("data, message", [
    ({"episodes": [{"start": 0, "end": 1, "instruction": "a"}, {"start": 0.5, "end": 2, "instruction": "b"}]},
     "overlap"),
    ({"episodes": [{"start": 0, "end": 1, "instruction": "a", "outcome": "ok"}]}, r"unknown key\(s\) \['outcome'\]"),
    ({"episodes": [{"start": 0, "instruction": "a"}]}, r"missing \['end'\]"),
    ({"episodes": [{"start": 2, "end": 1, "instruction": "a"}]}, "not after start"),
    ({"time_base": "bag_start", "episodes": []}, "time_base"),
])
def test_malformed_sidecars_are_refused(data, message):
    with pytest.raises(BagImportError, match=message):
        parse_segments(data, "sidecar")


def test_the_command_reads_a_sidecar_beside_the_bag_and_refuses_by_name(tmp_path, bag, capsys):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(MEASURED), encoding="utf-8")
    copy = tmp_path / "robot"
    import shutil

    shutil.copytree(bag, copy)
    sidecar_path(copy).write_text(yaml.safe_dump({"episodes": [
        {"start": 0.0, "end": 5.0, "instruction": "pick up the red cube", "success": True}]}), encoding="utf-8")
    assert import_main([str(copy) + "/", "--mapping", str(mapping), "--output", str(tmp_path / "dataset"),
                        "--frame-size", "16"]) == 0
    assert len(EpisodeDataset(tmp_path / "dataset")) == 1
    mapping.write_text(yaml.safe_dump(with_changes(MEASURED, arm__end_effector_frame="flange")), encoding="utf-8")
    assert import_main([str(bag), "--mapping", str(mapping), "--output", str(tmp_path / "other"),
                        "--instruction", "wave"]) == 2
    assert "'flange' is not in the bag's transforms" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
