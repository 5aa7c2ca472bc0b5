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
