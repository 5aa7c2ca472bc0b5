"""Each closed-loop episode as a rosbag2 recording in MCAP storage, so it opens in Foxglove and plays with
`ros2 bag play`: the camera, the instruction, the policy's rt1_action, the commands it sent (cmd_vel, arm_command),
odometry and the episode status.

`EpisodeBagRecorder` is a node in the closed loop's graph that subscribes to those topics with raw (serialized CDR)
callbacks, so a recording costs a copy of the bytes and no conversion; `write_episode_bag` writes them with the
`rosbags` rosbag2 writer (metadata.yaml plus one .mcap file whose schemas are the full ros2msg definitions, this
package's messages registered from msg/). Topic names are stored without the loop's private namespace
(/camera/image_raw, /rt1_action, ...), so every episode's bag has the same topics. Timestamps are the wall-clock
receive times, as `ros2 bag record` stores them; the messages' headers carry the simulation time.

A bag holds its episode only. The recorder starts before the reset that begins the episode, so it also receives what
the episode before it was still sending: its status, images and odometry, and the policy's answers to its images (a
step in flight when the policy was reset is answered after it). `episode_only` keeps what is stamped at or after the
episode's start (read off the status that ended it), the episode's own instruction, and the cmd_vel messages (which
carry no stamp) received from the policy's first answer to an image of the episode on. It ends the episode at the
stamp of the status that ended it (`episode_end_ns`): the image published with that status shows the final state and
is kept, but the policy's answer to it (rt1_action, arm_command, and the cmd_vel received from it on) arrives after
the episode was over, was never applied, and is dropped, however early or late it came.
"""
from __future__ import annotations

import shutil
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import String

from rt1_ros.node import qos
from rt1_ros.node.ros_graph import NANOSECONDS, stamp_ns
from rt1_ros.configuration.yaml_config import config_dir

# (topic relative to the loop's namespace, message type, QoS the publisher offers)
EPISODE_TOPICS = (
    ("camera/image_raw", "sensor_msgs/msg/Image", qos.RECORDING),
    ("instruction", "std_msgs/msg/String", qos.LATCHED),
    ("rt1_action", "rt1_ros/msg/RT1Action", qos.RECORDING),
    ("cmd_vel", "geometry_msgs/msg/Twist", qos.RECORDING),
    ("arm_command", "rt1_ros/msg/ArmCommand", qos.RECORDING),
    ("odom", "nav_msgs/msg/Odometry", qos.RECORDING),
    ("episode_status", "rt1_ros/msg/EpisodeStatus", qos.LATCHED),
)
UNSTAMPED_TOPICS = ("instruction", "cmd_vel")  # every other topic's message begins with a std_msgs/Header
PACKAGE_MESSAGES = ("ArmCommand", "RT1Action", "EpisodeStatus")
# EpisodeStatus.elapsed_s is a float32: header.stamp - elapsed_s is the episode's start to within 0.1 ms for episodes
# up to half an hour. The episode before ended at least one physics step earlier (physics.settle_time_s after a reset,
# 0.3 s in config/sim.yaml, with at least one step).
START_MARGIN_NS = 100_000
BAG_STORAGE_VERSION = 9  # rosbag2 metadata version (Jazzy and later)


@dataclass(frozen=True)
class RecordedMessage:
    topic: str  # as stored in the bag: "/" + the topic relative to the loop's namespace
    msgtype: str
    receive_time_ns: int
    data: bytes  # CDR, as received


def episode_topics(msgtypes: dict[str, str] | None = None) -> tuple:
    """EPISODE_TOPICS with the types in ``msgtypes`` (topic -> type) in place of the default ones."""
    return tuple((topic, (msgtypes or {}).get(topic, msgtype), profile) for topic, msgtype, profile in EPISODE_TOPICS)


def episode_start_ns(status) -> int:
    """The sim time (ns) at which the episode of an EpisodeStatus began, less START_MARGIN_NS: every message of the
    episode is stamped at or after it, every message of the episode before it earlier."""
    return stamp_ns(status.header.stamp) - round(float(status.elapsed_s) * NANOSECONDS) - START_MARGIN_NS


def episode_end_ns(status) -> int:
    """The sim time (ns) at which the episode of a done EpisodeStatus ended: the stamp of its final image, which the
    simulator published with that status and did not step for. Answers stamped at or after it were never applied."""
    return stamp_ns(status.header.stamp)


def header_stamp_ns(data: bytes) -> int:
    """header.stamp of a serialized message whose first field is a std_msgs/Header: after the 4-byte CDR
    encapsulation (its second byte odd: little endian), int32 sec and uint32 nanosec."""
    sec, nanosec = struct.unpack_from("<iI" if data[1] & 1 else ">iI", data, 4)
    return sec * NANOSECONDS + nanosec


def episode_only(messages: list[RecordedMessage], start_ns: int, end_ns: int,
                 instruction: str) -> list[RecordedMessage]:
    """The recorded ``messages`` that belong to the episode begun at sim time ``start_ns`` (`episode_start_ns`) and
    ended at ``end_ns`` (`episode_end_ns`) with ``instruction``, in the order received."""
    ordered = sorted(messages, key=lambda m: m.receive_time_ns)
    answer_times = [(m.receive_time_ns, header_stamp_ns(m.data)) for m in ordered if m.topic == "/rt1_action"]
    first_answer_ns = next((time for time, stamp in answer_times if start_ns <= stamp < end_ns), None)
    first_late_answer_ns = next((time for time, stamp in answer_times if stamp >= end_ns), None)
    kept = []
    for message in ordered:
        if message.topic == "/instruction":
            keep = deserialize_message(message.data, String).data == instruction
        elif message.topic == "/cmd_vel":
            # The policy publishes a step's rt1_action, then its cmd_vel; this node's executor takes rt1_action
            # first when both are waiting (subscriptions in EPISODE_TOPICS order).
            keep = (first_answer_ns is not None and message.receive_time_ns >= first_answer_ns
                    and (first_late_answer_ns is None or message.receive_time_ns < first_late_answer_ns))
        elif message.topic in ("/rt1_action", "/arm_command"):
            keep = start_ns <= header_stamp_ns(message.data) < end_ns  # stamped with the image they answer
        else:
            keep = start_ns <= header_stamp_ns(message.data) <= end_ns
        if keep:
            kept.append(message)
    return kept


def _message_class(msgtype: str):
    package, _, name = msgtype.split("/")
    module = __import__(f"{package}.msg", fromlist=[name])
    return getattr(module, name)


class EpisodeBagRecorder(Node):
    """Records EPISODE_TOPICS of its namespace between `start` and `stop`.

    ``msgtypes`` replaces the type of some topics (cmd_vel is geometry_msgs/msg/TwistStamped when rt1_node's
    base_output says so; give `write_episode_bag` the same); ``profiles`` replaces the QoS of some topics'
    subscriptions (a robot's best-effort camera does not reach the reliable subscription the lockstep loop uses);
    ``max_rate_hz`` keeps at most that many messages per second of a topic (by receive time), so a long episode of a
    30 Hz camera fits in memory."""

    def __init__(self, namespace: str, context, msgtypes: dict[str, str] | None = None,
                 profiles: dict | None = None, max_rate_hz: dict[str, float] | None = None) -> None:
        super().__init__("rt1_episode_bag", namespace=namespace, context=context)
        self._condition = threading.Condition()
        self._recording = False
        self._messages: list[RecordedMessage] = []
        self._statuses: list = []  # decoded episode_status messages recorded so far (for `stop`'s wait)
        self._action_stamps: set[int] = set()  # header stamps (ns) of the rt1_action messages recorded so far
        self._last_kept_ns: dict[str, int] = {}  # per throttled topic: receive time of the last message kept
        for topic, msgtype, profile in episode_topics(msgtypes):
            profile = (profiles or {}).get(topic, profile)
            rate = (max_rate_hz or {}).get(topic, 0.0)
            self.create_subscription(_message_class(msgtype), topic,
                                     self._callback(topic, msgtype, round(1e9 / rate) if rate > 0 else 0), profile,
                                     raw=True)

    def _callback(self, topic: str, msgtype: str, min_period_ns: int = 0):
        stored_topic = "/" + topic
        decoded_class = _message_class(msgtype) if topic in ("episode_status", "rt1_action") else None

        def record(data: bytes) -> None:
            message = RecordedMessage(stored_topic, msgtype, time.time_ns(), bytes(data))
            with self._condition:
                if self._recording:
                    if min_period_ns:
                        last = self._last_kept_ns.get(topic)
                        if last is not None and message.receive_time_ns - last < min_period_ns:
                            return
                        self._last_kept_ns[topic] = message.receive_time_ns
                    self._messages.append(message)
                    if decoded_class is None:
                        return
                    decoded = deserialize_message(message.data, decoded_class)
                    if topic == "episode_status":
                        self._statuses.append(decoded)
                    else:
                        self._action_stamps.add(stamp_ns(decoded.header.stamp))
                    self._condition.notify_all()
        return record

    def start(self) -> None:
        with self._condition:
            self._messages, self._statuses, self._action_stamps = [], [], set()
            self._last_kept_ns = {}
            self._recording = True

    def stop(self, final_status=None, action_stamps_ns=(), timeout_s: float = 10.0) -> list[RecordedMessage]:
        """Ends the recording and returns it: with ``final_status``, the episode's messages only (`episode_only`).
        First waits (up to ``timeout_s``) until this node, too, has recorded the status that ended the episode
        (``final_status(status) -> bool``) and every rt1_action the observer saw (``action_stamps_ns``, header
        stamps): the observer runs in another thread, and messages on different topics from different publishers
        reach two subscribers in no common order."""
        deadline = time.monotonic() + timeout_s
        expected_stamps = set(action_stamps_ns)

        def complete() -> bool:
            return ((final_status is None or any(final_status(s) for s in self._statuses))
                    and expected_stamps <= self._action_stamps)

        with self._condition:
            while not complete():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.get_logger().warning(f"the episode's recording may be incomplete: not every message the "
                                              f"observer saw arrived here within {timeout_s:g} s")
                    break
                self._condition.wait(remaining)
            self._recording = False
            final = next((s for s in self._statuses if final_status is not None and final_status(s)), None)
            messages, self._messages, self._statuses, self._action_stamps = self._messages, [], [], set()
        if final is None:
            return messages
        return episode_only(messages, episode_start_ns(final), episode_end_ns(final), final.instruction)


def episode_typestore():
    """rosbags' Kilted type store with this package's messages added from msg/ (source tree or share/)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    msg_dir = config_dir().parent / "msg"
    for name in PACKAGE_MESSAGES:
        text = (msg_dir / f"{name}.msg").read_text(encoding="utf-8")
        typestore.register(get_types_from_msg(text, f"rt1_ros/msg/{name}"))
    return typestore


def offered_qos(profile):
    """rosbags' Qos for an rclpy QoSProfile, so `ros2 bag play` replays latched topics as latched."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unspecified = QosTime(sec=0, nsec=0)  # rmw's "use the default"
    return Qos(history=QosHistory[profile.history.name], depth=profile.depth,
               reliability=QosReliability[profile.reliability.name], durability=QosDurability[profile.durability.name],
               deadline=unspecified, lifespan=unspecified, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=unspecified, avoid_ros_namespace_conventions=False)


def write_episode_bag(path: str | Path, messages: list[RecordedMessage], typestore=None,
                      custom_data: dict[str, str] | None = None, msgtypes: dict[str, str] | None = None) -> Path:
    """A rosbag2 directory at ``path``: metadata.yaml and <name>.mcap. Every topic of EPISODE_TOPICS gets a
    channel, recorded or not, so tools show the same topic list for every episode; ``msgtypes`` as the recorder's.
    ``custom_data`` goes into
    metadata.yaml's ``custom_data`` (rosbag2's string-to-string map; `ros2 bag info` leaves it alone, readers of the
    metadata find it there). A bag an earlier run left at ``path`` is replaced, as the demo and rt1-eval replace their
    other outputs; anything else there is refused."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = Path(path)
    if path.exists():
        contents = {entry.name for entry in path.iterdir()} if path.is_dir() else None
        if contents is None or "metadata.yaml" not in contents or \
                not all(name == "metadata.yaml" or name.endswith(".mcap") for name in contents):
            raise FileExistsError(f"{path} exists and is not an episode bag: not overwriting it")
        shutil.rmtree(path)
    typestore = typestore or episode_typestore()
    with Writer(path, version=BAG_STORAGE_VERSION, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {"/" + topic: writer.add_connection("/" + topic, msgtype, typestore=typestore,
                                                          offered_qos_profiles=[offered_qos(profile)])
                       for topic, msgtype, profile in episode_topics(msgtypes)}
        for message in sorted(messages, key=lambda m: m.receive_time_ns):
            writer.write(connections[message.topic], message.receive_time_ns, message.data)
        for key, value in (custom_data or {}).items():
            writer.set_custom_data(key, value)
    return path
