"""A closed-loop episode recorded as rosbag2/MCAP (`rt1_ros.closed_loop.episode_bag`), read back with the `mcap` and
`mcap-ros2-support` packages, the way Foxglove reads it: every topic is there with a decodable ros2msg schema, and
the messages are the episode's."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402

from rt1_ros.closed_loop.episode_bag import EPISODE_TOPICS, write_episode_bag  # noqa: E402

pytestmark = pytest.mark.slow

STEPS = 3


@pytest.fixture(scope="module")
def episode_and_bag(tmp_path_factory):
    from rt1_ros.closed_loop.loop import ClosedLoop, ClosedLoopConfig

    config = ClosedLoopConfig(checkpoint="", model_size="tiny", device="cpu", max_episode_steps=STEPS,
                              episode_timeout_s=120.0, record_bag=True)
    with ClosedLoop(config, "pick", idle_seed=99) as loop:
        episode = loop.run_episode("pick", 7)
    bag = write_episode_bag(tmp_path_factory.mktemp("bags") / "pick_7", episode.bag_messages)
    return episode, bag


def test_bag_is_a_rosbag2_mcap_with_every_episode_topic(episode_and_bag):
    _, bag = episode_and_bag
    metadata = (bag / "metadata.yaml").read_text()
    assert "storage_identifier: mcap" in metadata
    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as stream:
        summary = make_reader(stream).get_summary()
    channels = {channel.topic: summary.schemas[channel.schema_id] for channel in summary.channels.values()}
    assert set(channels) == {"/" + topic for topic, _, _ in EPISODE_TOPICS}
    for topic, msgtype, _ in EPISODE_TOPICS:
        schema = channels["/" + topic]
        assert schema.name == msgtype and schema.encoding == "ros2msg"
    # Nested types travel inside the schema, so a reader needs nothing but the file.
    assert b"MSG: std_msgs/Header" in channels["/rt1_action"].data


def test_bag_metadata_names_the_ros_type_hashes_and_latching(episode_and_bag):
    """`ros2 bag play` matches topics by the RIHS01 type hashes rosidl generated (share/<package>/msg/*.json) and
    offers each topic with the QoS recorded: the instruction and status stay latched."""
    from ament_index_python.packages import get_package_share_directory

    _, bag = episode_and_bag
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    topics = {entry["topic_metadata"]["name"]: entry["topic_metadata"]
              for entry in metadata["topics_with_message_count"]}
    for topic, msgtype, profile in EPISODE_TOPICS:
        recorded = topics["/" + topic]
        package, _, name = msgtype.split("/")
        generated = json.loads((Path(get_package_share_directory(package)) / "msg" / f"{name}.json").read_text())
        assert recorded["type_description_hash"] == generated["type_hashes"][0]["hash_string"], msgtype
        (offered,) = recorded["offered_qos_profiles"]
        assert offered["durability"] == profile.durability.name.lower(), topic
        assert offered["reliability"] == "reliable" and offered["depth"] == profile.depth
    assert topics["/instruction"]["offered_qos_profiles"][0]["durability"] == "transient_local"


def test_bag_holds_the_episode_as_it_ran(episode_and_bag):
    episode, bag = episode_and_bag
    (mcap_file,) = bag.glob("*.mcap")
    by_topic: dict[str, list] = {}
    log_times = []
    with open(mcap_file, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, message, decoded in reader.iter_decoded_messages():  # each decoded with its schema
            by_topic.setdefault(channel.topic, []).append(decoded)
            log_times.append(message.log_time)
    assert log_times == sorted(log_times)
    assert [m.data for m in by_topic["/instruction"]] == [episode.instruction]
    statuses = by_topic["/episode_status"]
    final = statuses[-1]
    assert final.done and final.seed == 7 and final.task_family == "pick" and final.step == episode.steps
    images, actions = by_topic["/camera/image_raw"], by_topic["/rt1_action"]
    assert len(images) >= episode.steps and images[0].encoding == "rgb8" and len(images[0].data) > 0
    # Lockstep: the policy answered every image it was sent, and the bag has the same answers the observer saw.
    answered = [a for a in actions if a.mode != 255]
    assert [a.header.stamp.sec * 10**9 + a.header.stamp.nanosec for a in answered] == \
        [a.stamp_ns for a in episode.actions if a.mode != 255]
    assert by_topic["/odom"] and (by_topic.get("/cmd_vel") or by_topic.get("/arm_command"))


def first_of_every_topic(messages) -> dict[str, tuple[int, object]]:
    """topic -> (log time, decoded message) of its first message, from (topic, log time, decoded) in log order."""
    first: dict[str, tuple[int, object]] = {}
    for topic, log_time, decoded in messages:
        first.setdefault(topic, (log_time, decoded))
    return first


def assert_only_the_episode(first: dict, seed: int, instruction: str, start_ns: int) -> None:
    """The first message of every topic belongs to the episode that began at sim time ``start_ns``: its status, its
    instruction, stamps from its start on, and the policy's velocity after its first answer to one of its images."""
    from rt1_ros.node.ros_graph import stamp_ns

    assert set(first) == {"/" + topic for topic, _, _ in EPISODE_TOPICS}, sorted(first)
    status = first["/episode_status"][1]
    assert (status.seed, status.instruction) == (seed, instruction), status
    assert first["/instruction"][1].data == instruction
    for topic in ("/camera/image_raw", "/odom", "/rt1_action", "/arm_command", "/episode_status"):
        assert stamp_ns(first[topic][1].header.stamp) >= start_ns, f"{topic} begins before the episode"
    assert first["/cmd_vel"][0] >= first["/rt1_action"][0], "a velocity before the policy's first answer"


def test_every_topic_of_the_bag_begins_with_the_episode_itself(episode_and_bag):
    """The recorder starts before the reset, while the episode laid out when the sim started (seed 99) may still
    run and the policy may still answer its images: none of it is in the bag (the demo's pick_100000 bag began with
    seed 100001's status)."""
    from rt1_ros.node.ros_graph import stamp_ns

    episode, bag = episode_and_bag
    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        messages = [(channel.topic, message.log_time, decoded)
                    for _, channel, message, decoded in reader.iter_decoded_messages()]
    first = first_of_every_topic(messages)
    statuses = [decoded for topic, _, decoded in messages if topic == "/episode_status"]
    # The episode began at its statuses' stamp less their elapsed_s (a float32: within 1 ms); the idle episode's
    # messages are stamped at least the reset's settling time (0.3 s) earlier.
    start_ns = min(stamp_ns(s.header.stamp) - round(s.elapsed_s * 10**9) for s in statuses) - 10**6
    assert_only_the_episode(first, 7, episode.instruction, start_ns)
    assert all(a.stamp_ns >= start_ns for a in episode.actions) and all(s >= start_ns for s in episode.frames)


def test_the_recorder_keeps_only_the_episode_it_was_stopped_for():
    """Real rclpy over DDS, the traffic written out: the episode before (seed 99) is still sending when the recording
    starts, as the closed loop's idle episode does at the first reset, and the policy answers one of its images after
    the reset (a step in flight when ~/reset came is run again on the same frame); after the episode, the policy answers
    its final image, which the sim never steps for."""
    import rclpy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from ros_harness import wait_for
    from rt1_ros.closed_loop.episode_bag import EpisodeBagRecorder
    from rt1_ros.msg import ArmCommand, EpisodeStatus, RT1Action
    from rt1_ros.node.ros_graph import NANOSECONDS, InProcessGraph, stamp_ns, to_stamp

    before_ns, start_ns, period_ns = 5 * NANOSECONDS, 6 * NANOSECONDS, NANOSECONDS // 3
    classes = {"camera/image_raw": Image, "instruction": String, "rt1_action": RT1Action, "cmd_vel": Twist,
               "arm_command": ArmCommand, "odom": Odometry, "episode_status": EpisodeStatus}

    def stamped(cls, stamp: int, **fields):
        message = cls(**fields)
        message.header.stamp = to_stamp(stamp)
        return message

    def status(seed: int, step: int, stamp: int, elapsed_s: float, done: bool = False) -> EpisodeStatus:
        return stamped(EpisodeStatus, stamp, seed=seed, step=step, elapsed_s=elapsed_s, done=done, task_family="pick",
                       instruction="pick up the red cube" if seed == 7 else "pick up the red cylinder")

    with InProcessGraph() as graph:
        recorder = graph.add(EpisodeBagRecorder("/bag_test", graph.context))
        peer = graph.add(rclpy.create_node("peer", namespace="/bag_test", context=graph.context))
        publishers = {topic: peer.create_publisher(classes[topic], topic, profile)
                      for topic, _, profile in EPISODE_TOPICS}
        assert wait_for(lambda: all(p.get_subscription_count() for p in publishers.values()), timeout=30.0)

        def send(topic: str, message) -> None:
            publishers[topic].publish(message)

        recorder.start()
        # The episode before, mid-run.
        send("episode_status", status(99, 5, before_ns, 5 / 3))
        send("camera/image_raw", stamped(Image, before_ns, height=1, width=1, encoding="rgb8", step=3, data=[1, 2, 3]))
        send("odom", stamped(Odometry, before_ns))
        # The reset, and the policy's late answer to the image before it.
        send("instruction", String(data="pick up the red cube"))
        send("episode_status", status(7, 0, start_ns, 0.0))
        send("rt1_action", stamped(RT1Action, before_ns, mode=1))
        send("cmd_vel", Twist())
        send("arm_command", stamped(ArmCommand, before_ns))
        # The episode.
        send("camera/image_raw", stamped(Image, start_ns, height=1, width=1, encoding="rgb8", step=3, data=[4, 5, 6]))
        send("odom", stamped(Odometry, start_ns))
        send("rt1_action", stamped(RT1Action, start_ns, mode=1))
        answer = Twist()
        answer.linear.x = 0.25
        send("cmd_vel", answer)
        send("arm_command", stamped(ArmCommand, start_ns))
        end_ns = start_ns + period_ns
        send("camera/image_raw", stamped(Image, end_ns, height=1, width=1, encoding="rgb8", step=3, data=[7, 8, 9]))
        send("episode_status", status(7, 1, end_ns, 1 / 3, done=True))
        # The policy's answer to the final image, after the episode ended: never applied.
        send("rt1_action", stamped(RT1Action, end_ns, mode=1))
        late = Twist()
        late.linear.x = 0.5
        send("cmd_vel", late)
        send("arm_command", stamped(ArmCommand, end_ns))

        def finished(message) -> bool:
            return message.done and message.seed == 7

        # Waits until the late answer, too, was recorded: the recording had it, and the episode leaves it out.
        messages = recorder.stop(finished, [start_ns, end_ns], timeout_s=30.0)

    decoded = [(m.topic, m.receive_time_ns, deserialize_message(m.data, classes[m.topic[1:]])) for m in messages]
    first = first_of_every_topic(decoded)
    assert_only_the_episode(first, 7, "pick up the red cube", start_ns)
    assert first["/cmd_vel"][1].linear.x == 0.25
    assert [m.linear.x for topic, _, m in decoded if topic == "/cmd_vel"] == [0.25]
    assert [stamp_ns(m.header.stamp) for topic, _, m in decoded if topic in ("/rt1_action", "/arm_command")] == \
        [start_ns, start_ns]
    assert [list(m.data) for topic, _, m in decoded if topic == "/camera/image_raw"] == [[4, 5, 6], [7, 8, 9]]
    assert {topic for topic, _, _ in decoded} == {"/" + topic for topic, _, _ in EPISODE_TOPICS}


def test_a_rerun_replaces_its_bag_but_never_another_folder(episode_and_bag, tmp_path):
    """make demo run twice writes the same <family>_<seed>/bag: the second run replaces it (it used to stop with
    rosbags' "exists already"); a folder that is not a bag is never deleted."""
    episode, bag = episode_and_bag
    again = write_episode_bag(bag, episode.bag_messages)
    assert again == bag and (bag / "metadata.yaml").is_file() and len(list(bag.glob("*.mcap"))) == 1
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an episode bag"):
        write_episode_bag(precious, episode.bag_messages)
    assert (precious / "todo.txt").read_text() == "keep me"
