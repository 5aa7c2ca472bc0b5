"""sim_node publishes what a real robot does (end_effector_pose, joint_states, odom, and tf / tf_static where the
tf2_msgs package is installed), and a real recording of them over ROS, made while the scripted expert drives the
lockstep simulator through rt1_action, arm_command and cmd_vel, imports through the ordinary-topics mapping into
the expert's own actions within ORDINARY_TOPIC_TOLERANCE (rt1_ros.training.ordinary_bag_comparison)."""
from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")
pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from geometry_msgs.msg import PoseStamped, Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from ros_harness import RosHarness, wait_for  # noqa: E402
from rt1_ros.configuration.action_layout import ActionSpaceConfig  # noqa: E402
from rt1_ros.data.rosbag_mapping import parse_mapping  # noqa: E402
from rt1_ros.data.bag_segments import Segment, Segmentation  # noqa: E402
from rt1_ros.data.rosbag_ordinary import import_bags  # noqa: E402
from rt1_ros.msg import ArmCommand, EpisodeStatus, RT1Action  # noqa: E402
from rt1_ros.node import qos  # noqa: E402
from rt1_ros.node.ros_graph import stamp_ns  # noqa: E402
from rt1_ros.node.sim_node import TFMessage, SimNode  # noqa: E402
from rt1_ros.sim.experts import ScriptedExpert  # noqa: E402
from rt1_ros.sim.robot_frames import END_EFFECTOR_FRAME  # noqa: E402
from rt1_ros.training.ordinary_bag_comparison import compare_actions  # noqa: E402

pytestmark = pytest.mark.ros

MAPPING = Path(__file__).resolve().parents[2] / "config" / "rosbag_mapping_ordinary.yaml"  # the source tree's
NO_TF = "tf2_msgs is not installed (ros-tf2-msgs wheel): sim_node publishes no tf"
# topic (relative to the test's namespace) -> (message class, type name in the bag, QoS the recorder subscribes with)
RECORDED = {
    "end_effector_pose": (PoseStamped, "geometry_msgs/msg/PoseStamped", qos.RECORDING),
    "joint_states": (JointState, "sensor_msgs/msg/JointState", qos.RECORDING),
    "odom": (Odometry, "nav_msgs/msg/Odometry", qos.RECORDING),
    "instruction": (String, "std_msgs/msg/String", qos.LATCHED),
}
if TFMessage is not None:
    RECORDED.update({"tf": (TFMessage, "tf2_msgs/msg/TFMessage", qos.TRANSFORMS),
                     "tf_static": (TFMessage, "tf2_msgs/msg/TFMessage", qos.LATCHED)})
CAMERA = ("camera/image_raw", Image, "sensor_msgs/msg/Image")


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


class Recorder:
    """Records topics as `ros2 bag record` would: the serialized messages with their receive (wall) times."""

    def __init__(self, node) -> None:
        self.node = node
        self.lock = threading.Lock()
        self.messages: list[tuple[str, str, int, bytes]] = []
        self.newest_state_ns = -1  # header stamp of the newest joint_states recorded
        self.images: list[int] = []  # header stamps of the images recorded

    def subscribe(self, topic: str, message_class, msgtype: str, profile) -> None:
        def record(data: bytes) -> None:
            received = time.time_ns()
            with self.lock:
                self.messages.append(("/" + topic, msgtype, received, bytes(data)))
                if topic == "joint_states":
                    stamp = stamp_ns(deserialize_message(data, JointState).header.stamp)
                    self.newest_state_ns = max(self.newest_state_ns, stamp)
                elif topic == CAMERA[0]:
                    self.images.append(stamp_ns(deserialize_message(data, Image).header.stamp))

        self.node.create_subscription(message_class, topic, record, profile, raw=True)

    def write(self, path: Path) -> Path:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        typestore = get_typestore(Stores.ROS2_KILTED)
        with self.lock:
            messages = sorted(self.messages, key=lambda m: m[2])
        with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {}
            for topic, msgtype, received, data in messages:
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
                writer.write(connections[topic], received, data)
        return path


class ExpertDriver:
    """Answers each image as rt1_node would, with the scripted expert's action for it: cmd_vel, then rt1_action and
    arm_command stamped with the image. The lockstep simulator waits for that rt1_action before it moves, so the
    state the expert reads is the one the image shows."""

    def __init__(self, ros, node: SimNode) -> None:
        self.node = node
        self.space = ActionSpaceConfig.from_yaml()
        self.expert = ScriptedExpert(node.sim, self.space)
        self.expert.reset(node.task)
        self.cmd_vel = ros.peer.create_publisher(Twist, "cmd_vel", qos.COMMANDS_AND_STATE)
        self.action = ros.peer.create_publisher(RT1Action, "rt1_action", qos.COMMANDS_AND_STATE)
        self.arm = ros.peer.create_publisher(ArmCommand, "arm_command", qos.COMMANDS_AND_STATE)
        self.actions: list[tuple[int, np.ndarray]] = []
        ros.peer.create_subscription(Image, CAMERA[0], self._on_image, qos.camera("reliable"))

    @property
    def terminated(self) -> bool:
        return bool(self.actions) and int(self.actions[-1][1][10]) == self.space.mode_index("terminate")

    def _on_image(self, image: Image) -> None:
        if self.terminated:
            return  # the image after terminate: the episode is over
        action = np.asarray(self.expert.act(), dtype=float)
        self.actions.append((stamp_ns(image.header.stamp), action))
        mode = self.space.mode_classes[int(action[10])]
        twist = Twist()
        if mode == "base":
            twist.linear.x, twist.linear.y, twist.angular.z = (float(v) for v in action[7:10])
        self.cmd_vel.publish(twist)
        step = RT1Action(mode=int(action[10]), enabled=True)
        step.header.stamp = image.header.stamp
        self.action.publish(step)
        arm = ArmCommand(gripper=float(action[6]) if mode == "arm" else float(self.node.sim.gripper_command))
        arm.header.stamp = image.header.stamp
        arm.header.frame_id = "base_link"
        if mode == "arm":
            arm.translation.x, arm.translation.y, arm.translation.z = (float(v) for v in action[0:3])
            arm.rotation.x, arm.rotation.y, arm.rotation.z = (float(v) for v in action[3:6])
        self.arm.publish(arm)


def start_sim(ros, family: str, seed: int) -> SimNode:
    ros.new_namespace()
    parameters = dict(camera_width=64, camera_height=48, task_family=family, seed=seed, lockstep=True,
                      lockstep_timeout_s=60.0)
    node = SimNode(namespace=ros.namespace, context=ros.context,
                   parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])
    return ros.add(node)


def test_the_sim_publishes_the_end_effector_pose_joints_and_odometry(ros):
    node = start_sim(ros, "pick", 1)
    try:
        poses = ros.collect(PoseStamped, "end_effector_pose")
        joints = ros.collect(JointState, "joint_states")
        odoms = ros.collect(Odometry, "odom")
        # Lockstep starts when the camera has a subscriber: the state topics are matched first.
        assert wait_for(lambda: all(node.count_subscribers(t) >= 1 for t in ("end_effector_pose", "joint_states",
                                                                             "odom")), timeout=10.0)
        images = ros.collect(Image, CAMERA[0], qos.camera("reliable"))
        ExpertDriver(ros, node)  # lockstep starts with a camera subscriber and steps with each answer
        assert wait_for(lambda: len(poses) > 20 and joints and odoms, timeout=60.0)
        assert poses[-1].header.frame_id == "base_link"
        assert set(joints[-1].name) >= {"finger_left", "finger_right", "wrist_roll"}
        assert (odoms[-1].header.frame_id, odoms[-1].child_frame_id) == ("odom", "base_link")
        # The state at the first image's stamp goes out with it, so an import can measure the first step.
        first_image = stamp_ns(images[0].header.stamp)
        assert first_image in {stamp_ns(p.header.stamp) for p in poses}
    finally:
        ros.remove(node)


@pytest.mark.skipif(TFMessage is None, reason=NO_TF)
def test_the_sim_publishes_tf_and_tf_static(ros):
    node = start_sim(ros, "pick", 1)
    try:
        statics = ros.collect(TFMessage, "tf_static", qos.LATCHED)
        transforms = ros.collect(TFMessage, "tf", qos.TRANSFORMS)
        ExpertDriver(ros, node)
        assert wait_for(lambda: statics and transforms, timeout=60.0)
        static_children = {t.child_frame_id for t in statics[-1].transforms}
        assert static_children == {"arm_base_link", "head_camera"}
        assert {(t.header.frame_id, t.child_frame_id) for t in transforms[-1].transforms} == \
            {("odom", "base_link"), ("arm_base_link", END_EFFECTOR_FRAME)}
    finally:
        ros.remove(node)


def pose_topic_mapping() -> dict:
    """The committed mapping with the end effector from end_effector_pose instead of tf."""
    mapping = yaml.safe_load(MAPPING.read_text(encoding="utf-8"))
    mapping["arm"] = {"frame": "base_link", "pose_topic": "/end_effector_pose", "delay_s": mapping["arm"]["delay_s"]}
    return mapping


@pytest.mark.parametrize("family, seed", [("pick", 1), ("move_near", 2)])
@pytest.mark.parametrize("arm_source", ["pose_topic", "tf"])
def test_a_recording_over_ros_imports_into_the_experts_actions(ros, tmp_path, family, seed, arm_source):
    if arm_source == "tf" and TFMessage is None:
        pytest.skip(NO_TF)
    node = start_sim(ros, family, seed)
    try:
        recorder = Recorder(ros.peer)
        for topic, (message_class, msgtype, profile) in RECORDED.items():
            recorder.subscribe(topic, message_class, msgtype, profile)
        # Lockstep starts when the camera has a subscriber: every state topic must be matched before that.
        assert wait_for(lambda: all(node.count_subscribers(topic) >= 1 for topic in RECORDED), timeout=10.0)
        recorder.subscribe(CAMERA[0], CAMERA[1], CAMERA[2], qos.camera("reliable"))
        statuses = ros.collect(EpisodeStatus, "episode_status", qos.LATCHED)
        driver = ExpertDriver(ros, node)
        assert wait_for(lambda: statuses and statuses[-1].done, timeout=240.0)
        assert driver.terminated
        last_image = driver.actions[-1][0]
        # The period after terminate is simulated too (then the final image): wait for its state to be recorded.
        assert wait_for(lambda: recorder.newest_state_ns > last_image and len(recorder.images) > len(driver.actions),
                        timeout=30.0)
    finally:
        ros.remove(node)
    assert [stamp for stamp, _ in driver.actions] == recorder.images[:len(driver.actions)]
    bag = recorder.write(tmp_path / "recording")
    mapping = pose_topic_mapping() if arm_source == "pose_topic" else yaml.safe_load(MAPPING.read_text("utf-8"))
    # What an operator writes for this recording: the episode ran from its first to its terminate image.
    segments = Segmentation((Segment(instruction=node.task.instruction, start_s=driver.actions[0][0] / 1e9,
                                     end_s=last_image / 1e9),), absolute=True)
    written = import_bags([(bag, segments)], parse_mapping(copy.deepcopy(mapping)), tmp_path / "dataset",
                          log=lambda _: None)
    expert = np.stack([action for _, action in driver.actions]).astype(np.float32)
    comparison = compare_actions([(expert, written[0].actions)], ActionSpaceConfig.from_yaml())
    print(f"\n{family} over ROS ({arm_source}):\n{comparison.table()}")
    assert comparison.within, comparison.table()
