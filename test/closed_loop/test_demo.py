"""`make demo` end to end, shortened: both nodes over real topics, episodes of two families, and the report files."""
import json

import cv2
import pytest

pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from rt1_ros.closed_loop.demo import main  # noqa: E402


def test_demo_runs_each_family_and_writes_its_report(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["--untrained", "--model-size", "tiny", "--families", "pick", "move_near", "--seeds", "100001",
                 "--max-steps", "3", "--device", "cpu", "--output", str(output), "--timeout-s", "120",
                 "--attention"]) == 0
    assert "UNTRAINED POLICY" in capsys.readouterr().out
    summary = json.loads((output / "summary.json").read_text())
    episodes = summary["episodes"]
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    simulator = MobileManipulatorSim()
    assert [(e["task_family"], e["seed"]) for e in episodes] == [("pick", 100001), ("move_near", 100001)]
    for episode in episodes:
        assert episode["trained"] is False
        assert 1 <= episode["steps"] <= 3 and episode["inference_ms_median"] > 0
        # The scene the simulator draws for that family and seed, under its default condition.
        assert episode["instruction"] == simulator.reset(episode["task_family"], episode["seed"]).instruction
        folder = output / f"{episode['task_family']}_{episode['seed']}"
        assert (folder / "episode.mp4").stat().st_size > 0 and (folder / "actions.png").stat().st_size > 0
        video = cv2.VideoCapture(str(folder / "episode.mp4"))
        ok, first = video.read()
        assert ok and first.shape[0] > first.shape[1]  # --attention: the maps' strip under the (square) frame
        assert (folder / "bag" / "metadata.yaml").is_file() and (folder / "bag" / "bag.mcap").stat().st_size > 0
    assert (output / "contact_sheet.png").stat().st_size > 0
    assert "| pick | 100001 |" in (output / "summary.md").read_text()


def test_demo_without_the_shipped_model_names_it(monkeypatch, tmp_path):
    import rt1_ros.runtime.policy_loading as policy_loading

    monkeypatch.setattr(policy_loading, "shipped_model_path", lambda: None)
    with pytest.raises(SystemExit, match="models/rt1_sim is missing"):
        main(["--output", str(tmp_path / "demo")])


def test_demo_seeds_must_match_the_families():
    with pytest.raises(SystemExit):
        main(["--families", "pick", "push", "move_near", "--seeds", "1", "2"])


def test_demo_runs_the_families_its_checkpoint_was_trained_on(tmp_path):
    import argparse

    import yaml

    from rt1_ros.closed_loop.demo import episode_plan
    from rt1_ros.sim.config import SimConfig
    from ros_harness import biased_checkpoint

    checkpoint = biased_checkpoint(tmp_path / "ckpt", mode=2, bins={})
    config = yaml.safe_load((checkpoint / "config.yaml").read_text())
    config.setdefault("extra", {})["dataset"] = {"families": ["push", "pick"]}
    (checkpoint / "config.yaml").write_text(yaml.safe_dump(config))
    args = argparse.Namespace(families=None, seeds=[100_004])
    assert episode_plan(args, str(checkpoint)) == (["pick", "push"], [100_004, 100_004])
    assert episode_plan(args, "") == (list(SimConfig.from_yaml().tasks.default_families), [100_004] * 3)
    assert episode_plan(argparse.Namespace(families=["push"], seeds=[7]), str(checkpoint)) == (["push"], [7])
    with pytest.raises(SystemExit, match="one per family"):
        episode_plan(argparse.Namespace(families=None, seeds=[1, 2, 3]), str(checkpoint))
