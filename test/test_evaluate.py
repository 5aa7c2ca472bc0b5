"""rt1-eval: one short episode through the real rt1_node and sim_node over ROS 2, and the ROS-free direct mode."""
from __future__ import annotations

import json

import pytest

from rt1_ros.evaluate import EvalConfig, evaluate, main


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
                 "1", "--max-episode-steps", "5", "--output", str(output), "--no-progress", "--record"]) == 0
    report = json.loads((output / "results.json").read_text())
    assert report["mode"] == "ros"
    [episode] = report["episodes"]
    assert episode["family"] == "move_near" and episode["seed"] == 100000
    # The policy's terminate travelled over rt1_action and ended the sim's episode at its first step.
    assert episode["terminated"] and episode["steps"] <= 1 and not episode["success"]
    assert episode["inference_ms"] and all(ms > 0 for ms in episode["inference_ms"])
    assert report["summary"]["move_near"]["success_rate"] == 0.0
    assert "| move_near | 0/1 | 0% (0%–79%) |" in (output / "results.md").read_text()  # with its Wilson interval
    # --record: the episode as a rosbag2/MCAP folder (test_episode_bag reads one back message by message).
    bag = output / "episodes" / "move_near_100000"
    assert "storage_identifier: mcap" in (bag / "metadata.yaml").read_text() and list(bag.glob("*.mcap"))


def test_direct_evaluation_is_labelled_and_drives_the_sim(driving_checkpoint, tmp_path):
    settings = EvalConfig(checkpoint=str(driving_checkpoint), families=("move_near",), episodes_per_family=1,
                            max_episode_steps=3)
    report = evaluate(settings, direct=True, output=tmp_path / "direct", progress=False)
    assert report["mode"] == "direct" and "DIRECT" in report["table_markdown"]
    [episode] = report["episodes"]
    assert episode["steps"] == 3 and not episode["terminated"]
    assert len(episode["inference_ms"]) == 3


def test_wilson_interval_brackets_the_rate_and_stays_in_bounds():
    from rt1_ros.evaluate import wilson_interval

    low, high = wilson_interval(40, 50)
    assert 0.66 < low < 0.8 < high < 0.9  # textbook value for 40/50: 0.670 - 0.888
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] > 0.1
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] < 0.9


def test_held_out_seeds_are_planned_and_reported_apart(tmp_path):
    """Seeds are sorted by whether the checkpoint's training data held their (family, target) out."""
    from rt1_ros.evaluate import plan_jobs, summarise

    settings = EvalConfig(checkpoint="unused", families=("pick",), episodes_per_family=3,
                            held_out_episodes_per_family=2)
    jobs = plan_jobs(settings, {("pick", "red_cube")})
    assert [j.held_out for j in jobs].count(True) == 2 and [j.held_out for j in jobs].count(False) == 3
    assert all((j.target == "red_cube") == j.held_out for j in jobs)
    assert len({j.seed for j in jobs}) == 5 and min(j.seed for j in jobs) == settings.seed_start
    from rt1_ros.evaluate import EpisodeOutcome

    outcomes = [EpisodeOutcome("pick", j.seed, "", success=j.held_out, steps=5, terminated=True, wall_s=1.0,
                               target=j.target, held_out=j.held_out) for j in jobs]
    summary = summarise(outcomes, ("pick",))
    assert summary["pick"]["successes"] == 0 and summary["pick"]["episodes"] == 3
    assert summary["pick (held out)"]["successes"] == 2 and summary["pick (held out)"]["targets"] == ["red_cube"]


def test_held_out_episodes_need_a_checkpoint_that_records_them():
    from rt1_ros.evaluate import plan_jobs

    with pytest.raises(ValueError, match="no held-out targets"):
        plan_jobs(EvalConfig(checkpoint="x", families=("pick",), held_out_episodes_per_family=1), set())


def test_record_is_refused_in_direct_mode(capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", "unused", "--direct", "--record"])
    assert "--direct has none" in capsys.readouterr().err
