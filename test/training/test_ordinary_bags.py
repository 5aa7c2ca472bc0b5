"""Expert episodes recorded as a robot's ordinary topics (rt1-sim-bags record) and imported through
config/rosbag_mapping_ordinary.yaml reproduce the expert's commanded actions within ORDINARY_TOPIC_TOLERANCE per
dimension; the same comparison fails far above it when the mapping names the wrong arm frame.

The bags are written from the simulator's state with the rosbags writer, stepping as sim_node's lockstep does;
test/node/test_sim_ordinary_topics.py records the same topics over ROS from a running sim_node."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.data.dataset import EpisodeDataset
from rt1_ros.data.rosbag_import import main as import_main
from rt1_ros.training.ordinary_bags import (ORDINARY_TOPIC_TOLERANCE, RecordSettings, compare_actions,
                                            imported_pairs, main as sim_bags_main, record)

MAPPING = Path(__file__).resolve().parents[2] / "config" / "rosbag_mapping_ordinary.yaml"  # the source tree's
FAMILIES = ["pick", "push", "move_near"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("sim_bags")
    episodes = record(root / "bags", FAMILIES, episodes_per_family=1, seed_start=1, keep_failed=True,
                      settings=RecordSettings(image_size=(32, 32)), log=lambda _: None)
    return root / "bags", episodes


def import_with(mapping: Path, bags: Path, output: Path) -> int:
    return import_main([*(str(bag) for bag in sorted(bags.iterdir()) if bag.is_dir()), "--mapping", str(mapping),
                        "--output", str(output), "--frame-size", "16"])


def test_the_recording_has_a_robots_ordinary_topics(recorded):
    from rosbags.rosbag2 import Reader

    bags, episodes = recorded
    assert [e.family for e in episodes] == FAMILIES and all(len(e.actions) > 3 for e in episodes)
    with Reader(bags / "pick_00001") as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
    assert topics["/tf"] == topics["/tf_static"] == "tf2_msgs/msg/TFMessage"
    assert topics["/joint_states"] == "sensor_msgs/msg/JointState" and topics["/odom"] == "nav_msgs/msg/Odometry"
    assert "rt1_ros/msg/ArmCommand" not in topics.values()
    sidecar = yaml.safe_load((bags / "pick_00001.segments.yaml").read_text(encoding="utf-8"))
    assert sidecar["episodes"][0]["instruction"] == episodes[0].instruction


def test_imports_reproduce_the_experts_actions_within_the_stated_tolerance(recorded, tmp_path):
    bags, episodes = recorded
    assert import_with(MAPPING, bags, tmp_path / "dataset") == 0
    dataset = EpisodeDataset(tmp_path / "dataset")
    assert sorted(e.info.task_family for e in dataset) == sorted(FAMILIES)
    assert {e.info.instruction for e in dataset} == {e.instruction for e in episodes}
    comparison = compare_actions(imported_pairs(bags, tmp_path / "dataset"), ActionSpaceConfig.from_yaml())
    print("\n" + comparison.table())
    assert comparison.episodes == 3 and comparison.mode_agreement == 1.0
    assert comparison.within, comparison.table()
    assert sim_bags_main(["compare", "--bags", str(bags), "--dataset", str(tmp_path / "dataset")]) == 0


def test_a_wrong_arm_frame_in_the_mapping_is_caught_by_the_comparison(recorded, tmp_path):
    bags, _ = recorded
    wrong = yaml.safe_load(MAPPING.read_text(encoding="utf-8"))
    wrong["arm"]["frame"] = "head_camera"  # a real frame, tilted: deltas about the camera's axes
    mapping = tmp_path / "wrong_frame.yaml"
    mapping.write_text(yaml.safe_dump(wrong), encoding="utf-8")
    assert import_with(mapping, bags, tmp_path / "dataset") == 0
    comparison = compare_actions(imported_pairs(bags, tmp_path / "dataset"), ActionSpaceConfig.from_yaml())
    errors = {d.name: d.max_error for d in comparison.dimensions}
    assert not comparison.within
    assert max(errors[name] / ORDINARY_TOPIC_TOLERANCE[name] for name in ("arm_x", "arm_y", "arm_z")) > 3.0
    assert sim_bags_main(["compare", "--bags", str(bags), "--dataset", str(tmp_path / "dataset")]) == 1


def test_compare_refuses_episodes_of_different_lengths():
    expert = np.zeros((5, 11), np.float32)
    with pytest.raises(ValueError, match="4 steps, its expert episode 5"):
        compare_actions([(expert, expert[:4])], ActionSpaceConfig.from_yaml())
