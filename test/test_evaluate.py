"""rt1-eval: one short episode through the real rt1_node and sim_node over ROS 2, and the ROS-free direct mode."""
from __future__ import annotations

import json

import pytest

from rt1_ros.evaluate import EvalSettings, evaluate, main


@pytest.fixture
def terminating_checkpoint(tmp_path):
    pytest.importorskip("rclpy")
    from ros_harness import biased_checkpoint

    return biased_checkpoint(tmp_path / "ckpt", mode=2, bins={})  # always terminate


@pytest.fixture
def driving_checkpoint(tmp_path):
    pytest.importorskip("rclpy")
    from ros_harness import biased_checkpoint

    return biased_checkpoint(tmp_path / "ckpt_drive", mode=1, bins={7: 230})  # base mode, forward ~0.4 m/s


@pytest.mark.ros
def test_ros_evaluation_of_one_episode(terminating_checkpoint, tmp_path):
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    output = tmp_path / "eval"
    assert main(["--checkpoint", str(terminating_checkpoint), "--families", "move_near", "--episodes-per-family",
                 "1", "--max-episode-steps", "5", "--output", str(output), "--no-progress"]) == 0
    report = json.loads((output / "results.json").read_text())
    assert report["mode"] == "ros"
    [episode] = report["episodes"]
    assert episode["family"] == "move_near" and episode["seed"] == 100000
    # The policy's terminate travelled over rt1_action and ended the sim's episode at its first step.
    assert episode["terminated"] and episode["steps"] <= 1 and not episode["success"]
    assert episode["inference_ms"] and all(ms > 0 for ms in episode["inference_ms"])
    assert report["summary"]["move_near"]["success_rate"] == 0.0
    assert "| move_near | 0/1 | 0% |" in (output / "results.md").read_text()


def test_direct_evaluation_is_labelled_and_drives_the_sim(driving_checkpoint, tmp_path):
    settings = EvalSettings(checkpoint=str(driving_checkpoint), families=("move_near",), episodes_per_family=1,
                            max_episode_steps=3)
    report = evaluate(settings, direct=True, output=tmp_path / "direct", progress=False)
    assert report["mode"] == "direct" and "DIRECT" in report["table_markdown"]
    [episode] = report["episodes"]
    assert episode["steps"] == 3 and not episode["terminated"]
    assert len(episode["inference_ms"]) == 3
