"""rt1-eval: one short episode through the real rt1_node and sim_node over ROS 2, the ROS-free direct mode, and the
protocol around them (conditions, seed splits, one report run per model)."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from rt1_ros.closed_loop.evaluation import EvalConfig, evaluate, main


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
    # The dev split's first seed, the default condition.
    assert episode["family"] == "move_near" and episode["seed"] == 100000 and episode["condition"] == "seen"
    # The policy's terminate travelled over rt1_action and ended the sim's episode at its first step.
    assert episode["terminated"] and episode["steps"] <= 1 and not episode["success"]
    assert episode["inference_ms"] and all(ms > 0 for ms in episode["inference_ms"])
    assert report["summary"]["seen/move_near"]["success_rate"] == 0.0
    assert report["seeds"] == {"split": "dev", "first": 100000, "last": 100000}
    # One row per condition, a column per family, each cell with its Wilson interval.
    assert "| seen | 0/1, 0% (0%–79%) | 0/1, 0% (0%–79%) |" in (output / "results.md").read_text()
    # --record: the episode as a rosbag2/MCAP folder (test_episode_bag reads one back message by message).
    bag = output / "episodes" / "seen_move_near_100000"
    assert "storage_identifier: mcap" in (bag / "metadata.yaml").read_text() and list(bag.glob("*.mcap"))


def test_direct_evaluation_is_labelled_and_drives_the_sim(driving_checkpoint, tmp_path):
    settings = EvalConfig(checkpoint=str(driving_checkpoint), families=("move_near",), episodes_per_family=1,
                            max_episode_steps=3)
    report = evaluate(settings, direct=True, output=tmp_path / "direct", progress=False)
    assert report["mode"] == "direct" and "DIRECT" in report["table_markdown"]
    [episode] = report["episodes"]
    assert episode["steps"] == 3 and not episode["terminated"]
    assert len(episode["inference_ms"]) == 3


def test_every_condition_runs_the_same_seeds_and_is_reported_in_its_own_row():
    from rt1_ros.closed_loop.evaluation import plan_jobs
    from rt1_ros.closed_loop.success_table import EpisodeOutcome, condition_table, summarise

    settings = EvalConfig(checkpoint="unused", families=("pick", "move_near"), conditions=("seen", "unseen_pairs"),
                          episodes_per_family=3)
    jobs = plan_jobs(settings)
    assert len(jobs) == 12
    seeds = {(j.condition, j.family): [j.seed for j in jobs if (j.condition, j.family) == (c, f)]
             for c in settings.conditions for f in settings.families for j in jobs}
    assert all(s == [100000, 100001, 100002] for s in seeds.values())
    outcomes = [EpisodeOutcome(j.family, j.seed, "", success=(j.condition == "seen"), steps=5, terminated=True,
                               wall_s=1.0, condition=j.condition) for j in jobs]
    summary = summarise(outcomes)
    assert summary["seen/pick"]["successes"] == 3 and summary["unseen_pairs/pick"]["successes"] == 0
    assert summary["seen/all"]["episodes"] == 6
    table = condition_table(summary, settings.families)
    assert "| seen | 3/3, 100% (44%–100%) | 3/3, 100% (44%–100%) | 6/6, 100% (61%–100%) |" in table
    assert "| unseen_pairs | 0/3, 0% (0%–56%) |" in table


def test_seeds_stay_inside_their_split():
    from rt1_ros.closed_loop.evaluation import seed_range

    assert seed_range(EvalConfig(checkpoint="x", split="report", episodes_per_family=5)) == (1_000_000, 1_000_004)
    with pytest.raises(ValueError, match="dev range"):
        seed_range(EvalConfig(checkpoint="x", seed_start=50, episodes_per_family=5))  # training seeds
    with pytest.raises(ValueError, match="report range"):
        seed_range(EvalConfig(checkpoint="x", split="report", seed_start=100_000))


def test_a_condition_that_would_not_test_what_it_says_is_refused(terminating_checkpoint):
    from rt1_ros.closed_loop.evaluation import check_conditions

    settings = EvalConfig(checkpoint=str(terminating_checkpoint), conditions=("unseen_pairs",))
    with pytest.raises(ValueError, match="would not be unseen"):  # it held out nothing
        check_conditions(settings)
    assert check_conditions(settings, force=True)  # forced: run, with the reason kept
    with pytest.raises(KeyError, match="unknown condition"):
        check_conditions(EvalConfig(checkpoint=str(terminating_checkpoint), conditions=("sunny",)))


def _record_dataset(checkpoint: Path, families: list[str], held_out: list[str]) -> None:
    """Write what rt1-train records about its data into ``checkpoint``'s config.yaml."""
    import yaml

    path = checkpoint / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config.setdefault("extra", {})["dataset"] = {"families": families, "held_out_targets": held_out,
                                                 "conditions": ["seen"]}
    path.write_text(yaml.safe_dump(config))


def test_the_default_families_are_the_checkpoints_and_only_their_held_out_pairs_are_compared(terminating_checkpoint):
    from rt1_ros.closed_loop.evaluation import FAMILIES, check_conditions, trained_families
    from rt1_ros.sim.config import SimConfig

    tasks = SimConfig.from_yaml().tasks
    assert FAMILIES == tasks.default_families  # a checkpoint that records nothing is evaluated on these
    assert trained_families(str(terminating_checkpoint)) == tasks.default_families
    # rt1-train records its families sorted; the tools list them in default_families' order.
    pairs = {f: next(p for p in tasks.held_out_pairs if p.startswith(f"{f}:")) for f in ("pick", "push")}
    _record_dataset(terminating_checkpoint, ["push", "pick"], [pairs["pick"], pairs["push"]])
    assert trained_families(str(terminating_checkpoint)) == ("pick", "push")
    # The checkpoint held out exactly its families' pairs: unseen_pairs is a fair test of those families, even
    # though config/sim.yaml holds out pairs of families the checkpoint never trained on.
    settings = EvalConfig(checkpoint=str(terminating_checkpoint), families=("pick", "push"),
                          conditions=("unseen_pairs",))
    assert check_conditions(settings) == []
    # A pair it was trained on is no unseen pair.
    _record_dataset(terminating_checkpoint, ["pick", "push"], [pairs["pick"]])
    with pytest.raises(ValueError, match="would not be unseen"):
        check_conditions(settings)
    assert check_conditions(replace(settings, families=("pick",))) == []


@pytest.mark.ros
def test_a_report_run_is_recorded_in_the_checkpoint_and_not_repeated(terminating_checkpoint, tmp_path, capsys):
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    from rt1_ros.closed_loop.evaluation import recorded_report_runs

    args = ["--checkpoint", str(terminating_checkpoint), "--families", "move_near", "--episodes-per-family", "1",
            "--max-episode-steps", "2", "--no-progress", "--split", "report"]
    assert recorded_report_runs(str(terminating_checkpoint)) == []
    assert main(args + ["--output", str(tmp_path / "first")]) == 0
    [run] = recorded_report_runs(str(terminating_checkpoint))
    assert run["seeds"] == {"split": "report", "first": 1_000_000, "last": 1_000_000}
    assert run["rows"]["seen/move_near"] == {"successes": 0, "episodes": 1, "wilson95": [0.0, 0.7935]}
    with pytest.raises(SystemExit):
        main(args + ["--output", str(tmp_path / "second")])
    assert "already records a report run" in capsys.readouterr().err
    assert main(args + ["--output", str(tmp_path / "forced"), "--force"]) == 0
    assert len(recorded_report_runs(str(terminating_checkpoint))) == 2


def test_training_seeds_are_only_a_direct_check_of_the_fit(capsys):
    with pytest.raises(SystemExit):
        main(["--split", "train", "--episodes-per-family", "1"])
    assert "use it with --direct" in capsys.readouterr().err


def test_record_is_refused_in_direct_mode(capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", "unused", "--direct", "--record"])
    assert "--direct has none" in capsys.readouterr().err


def test_a_direct_episode_is_the_same_whatever_ran_before_it(tmp_path):
    """Dev comparisons pair episodes by seed: a direct episode's actions must not depend on the episodes the same
    evaluator ran before it (the simulator's and the policy's state both reset)."""
    import numpy as np
    import torch

    from rt1_ros.closed_loop.evaluation import DirectEvaluation
    from rt1_ros.model.action_tokenizer import ActionSpaceConfig
    from rt1_ros.model.checkpoint import save_pretrained
    from rt1_ros.model.rt1 import RT1, RT1Config

    torch.manual_seed(0)
    model = RT1(RT1Config.from_yaml("tiny"))
    with torch.no_grad():
        for head in model.action_head.heads:
            head.weight.mul_(50.0)  # sharp heads: the tokens follow the image, not only the biases
            head.bias.zero_()
        model.action_head.heads[10].bias[2] = -1e4  # the mode head never terminates: every episode runs its 4 steps
    checkpoint = save_pretrained(model, tmp_path / "random_tiny", ActionSpaceConfig.from_yaml())
    settings = EvalConfig(checkpoint=str(checkpoint), max_episode_steps=4)

    def actions(evaluation, family, seed):
        recorded = []
        select_action = evaluation.policy.select_action

        def recording(image):
            step = select_action(image)
            recorded.append(np.asarray(step.action).copy())
            return step

        evaluation.policy.select_action = recording
        try:
            evaluation.run_episode("seen", family, seed)
        finally:
            evaluation.policy.select_action = select_action
        return np.stack(recorded)

    first = DirectEvaluation(settings)
    try:
        pick_alone = actions(first, "pick", 100000)
        other = actions(first, "push", 100001)
        pick_after_another = actions(first, "pick", 100000)
    finally:
        first.close()
    assert len(pick_alone) == 4 and not np.array_equal(pick_alone, other), "the actions follow the scene"
    np.testing.assert_array_equal(pick_after_another, pick_alone)


@pytest.mark.ros
@pytest.mark.slow
def test_episodes_run_in_worker_processes_come_back_as_one_process_runs_them(driving_checkpoint, tmp_path):
    """--workers deals the episodes out to processes with their own nodes: the report lists the same episodes, in
    the plan's order, with the outcomes one process gives (each seed's own instruction shows the order held)."""
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    settings = EvalConfig(checkpoint=str(driving_checkpoint), families=("pick", "move_near"), episodes_per_family=2,
                          max_episode_steps=2)
    alone = evaluate(settings, output=tmp_path / "alone", progress=False)
    shared = evaluate(EvalConfig(**{**settings.__dict__, "workers": 2}), output=tmp_path / "shared", progress=False)

    def outline(report):
        return [(e["condition"], e["family"], e["seed"], e["instruction"], e["steps"], e["success"], e["terminated"])
                for e in report["episodes"]]

    assert len({e[3] for e in outline(alone)}) == 4, "each seed's instruction differs, so order is visible"
    assert outline(shared) == outline(alone)
    assert [(e["family"], e["seed"]) for e in alone["episodes"]] == [
        ("pick", 100000), ("pick", 100001), ("move_near", 100000), ("move_near", 100001)]
    assert shared["settings"]["workers"] == 2 and shared["summary"].keys() == alone["summary"].keys()


def test_workers_below_one_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--workers", "0", "--checkpoint", "models/rt1_sim"])
    assert "--workers 0" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _command_line(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may not reap an orphan at once)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_worker_processes_exit_when_the_evaluation_is_killed(terminating_checkpoint, tmp_path):
    """A killed rt1-eval (a test's timeout, kill -9) must not leave its --workers processes evaluating for
    nobody. Killed once the workers have reported an episode, so they were really running."""
    import os
    import select
    import signal
    import subprocess
    import sys
    import time

    from ros_harness import wait_for

    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "rt1_ros.closed_loop.evaluation", "--direct", "--checkpoint",
               str(terminating_checkpoint), "--families", "move_near", "--episodes-per-family", "100000",
               "--workers", "2", "--output", str(tmp_path / "eval")]
    parent = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(root)})
    workers = []
    try:
        progress, deadline = b"", time.monotonic() + 300.0
        while not re.search(rb"\| [1-9]\d*/", progress):  # tqdm's bar once an episode has finished
            ready, _, _ = select.select([parent.stderr], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no episode finished within 300 s: {progress[-2000:]!r}"
            chunk = os.read(parent.stderr.fileno(), 4096)
            assert chunk, f"rt1-eval ended before any episode: {progress[-2000:]!r}"
            progress += chunk
        workers = [pid for pid in _children(parent.pid) if b"multiprocessing" in _command_line(pid)]
        assert len(workers) >= 2 and all(_running(pid) for pid in workers), workers
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert wait_for(lambda: not any(_running(pid) for pid in workers), timeout=60.0), \
            f"worker processes {workers} outlived the killed evaluation"
    finally:
        parent.kill()
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
