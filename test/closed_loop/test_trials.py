"""rt1-trial (`rt1_ros.closed_loop.trials`): operator-scored episodes against a running rt1_node.

The ROS tests put the simulator in the robot's place (`trial_rehearsal.start_stand_in`: sim_node in free run on sim
time, the real rt1_node with a tiny biased checkpoint, timer-triggered and starting disabled, as on a robot) and a
scripted operator in the person's (`trial_rehearsal.ScriptedOperator`: it lays out each scene with the sim's
reset_episode and answers through rt1-trial's services or its terminal). Times are compared on the nodes' clocks
(sim time), never against wall-clock sleeps.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from rt1_ros.closed_loop.trials import (OperatorEvent, OperatorInputs, TrialError, TrialsFile, TrialTask,
                                        load_or_store_plan, parse_task, plan_episodes, read_tasks, trial_report)

CONTROL_RATE_HZ = 3.0  # rt1_node's default: one control period is 1/3 s
SIM = dict(camera_width=96, camera_height=96, camera_rate_hz=5.0, task_family="move_near", seed=99)
RUN_TIMEOUT_S = 600.0  # a hung run fails instead of waiting for pytest's own timeout


# ---------------------------------------------------------------------------------------------------- no ROS
def test_instructions_name_their_column_and_episodes_go_round_them(tmp_path):
    assert parse_task("[pick]  pick up   the can ") == TrialTask("pick", "pick up the can")
    assert parse_task("open the drawer") == TrialTask("open the drawer", "open the drawer")
    assert parse_task("[] x") == TrialTask("[] x", "[] x")  # an empty label is no label
    listing = tmp_path / "tasks.txt"
    listing.write_text("# kitchen\n[pick] pick up the sponge\n\n  open the drawer\n", encoding="utf-8")
    tasks = read_tasks(listing)
    assert tasks == [TrialTask("pick", "pick up the sponge"), TrialTask("open the drawer", "open the drawer")]
    assert plan_episodes(tasks, None) == tasks
    assert [t.task for t in plan_episodes(tasks, 5)] == ["pick", "open the drawer", "pick", "open the drawer", "pick"]
    with pytest.raises(ValueError, match="no instructions"):
        plan_episodes([], 3)


def test_an_output_keeps_its_plan(tmp_path):
    plan = [TrialTask("pick", "pick up the sponge")] * 2
    stored = load_or_store_plan(tmp_path / "run", plan, None)
    assert stored["condition"] == "robot" and len(stored["plan"]) == 2
    assert load_or_store_plan(tmp_path / "run", None, None) == stored  # continued without repeating the plan
    assert load_or_store_plan(tmp_path / "run", plan, "robot") == stored
    with pytest.raises(TrialError, match="another plan"):
        load_or_store_plan(tmp_path / "run", plan[:1], None)
    with pytest.raises(TrialError, match="--condition"):
        load_or_store_plan(tmp_path / "run", None, "lab")
    with pytest.raises(TrialError, match="no trial.json"):
        load_or_store_plan(tmp_path / "new", None, None)


def record(episode: int, verdict: str, stop_reason: str = "operator", attempt: int = 1) -> dict:
    return {"episode": episode, "attempt": attempt, "task": "pick", "instruction": "pick up the sponge",
            "verdict": verdict, "stop_reason": stop_reason, "steps": 10, "duration_s": 3.0, "inference_ms": [5.0]}


def test_a_line_cut_short_by_a_crash_is_dropped_and_every_whole_one_kept(tmp_path):
    path = tmp_path / "trials.jsonl"
    whole = "".join(json.dumps(record(e, "success")) + "\n" for e in (1, 2))
    path.write_text(whole + json.dumps(record(3, "failure"))[:25], encoding="utf-8")  # died mid-write
    trials = TrialsFile(path)
    assert [r["episode"] for r in trials.records] == [1, 2]
    assert path.read_text(encoding="utf-8") == whole  # the torn tail is gone, so the next line starts clean
    trials.append(record(3, "skip"))
    trials.append(record(3, "failure", attempt=2))
    again = TrialsFile(path)
    assert again.records == trials.records
    assert again.scored(3)["attempt"] == 2 and again.attempts(3) == 2 and again.scored(4) is None
    path.write_text(whole.replace("}\n", "\n", 1), encoding="utf-8")  # damage that no crash makes
    with pytest.raises(TrialError, match="trials.jsonl:1"):
        TrialsFile(path)


def test_the_table_is_rt1_evals_with_wilson_intervals_and_skips_left_out():
    plan_record = {"condition": "robot", "plan": [{"task": "pick", "instruction": "pick up the sponge"}] * 3}
    records = [record(1, "success", "terminate"), record(2, "skip"), record(2, "failure", "timeout", attempt=2),
               record(3, "success")]
    report = trial_report(plan_record, records, {"node": "/rt1_node", "checkpoint": "ckpt"})
    table = report["table_markdown"]
    assert "| robot | 2/3, 67% (21%–94%) | 2/3, 67% (21%–94%) |" in table
    assert "stopped by terminate ×1, timeout ×1, operator ×1; skipped attempts: 1" in table
    assert report["summary"]["robot/pick"]["wilson95"] == [0.2077, 0.9385]
    assert [r["episode"] for r in report["episodes"]] == [1, 2, 3] and len(report["skipped"]) == 1


def test_a_resumed_run_must_run_the_policy_the_first_session_ran():
    from rt1_ros.closed_loop.trials import same_policy

    first = {"node": "/rt1_node", "checkpoint": "/models/a", "model_size": "paper"}
    assert same_policy(first, dict(first, node="/robot1/rt1_node"))
    assert not same_policy(first, dict(first, checkpoint="/models/b"))
    untrained = dict(first, checkpoint="", model_size="tiny")
    assert not same_policy(untrained, dict(untrained, model_size="paper"))


def test_operator_input_counts_only_for_the_phase_it_was_given_in():
    inputs = OperatorInputs()
    scene = inputs.enter("scene")
    assert inputs.offer(OperatorEvent("success")) == (False, "the trial is in phase 'scene', which does not take "
                                                             "'success'")
    assert inputs.offer(OperatorEvent("scene_ready"))[0]
    assert inputs.wait(scene).kind == "scene_ready"
    running = inputs.enter("running")
    inputs.enter("verdict")
    # A terminate or timeout of an episode that is over never reaches the next phase.
    assert inputs.offer(OperatorEvent("terminate"), token=running) == (False, "that phase is over")
    assert not inputs.offer(OperatorEvent("stop"))[0]


# ---------------------------------------------------------------------------------------------------- over ROS
@pytest.fixture
def ros():
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    from ros_harness import RosHarness

    harness = RosHarness()
    harness.new_namespace()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def scenes():
    """Two move_near scenes and the instruction the sim lays out for each: {episode: (family, seed, task)}."""
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    from rt1_ros.closed_loop.trial_rehearsal import rehearsal_plan

    return {i + 1: entry for i, entry in enumerate(rehearsal_plan(["move_near"], [100_000, 100_001], "seen"))}


def stand_in(ros, checkpoint, **node_parameters):
    from rt1_ros.closed_loop.trial_rehearsal import start_stand_in

    node_parameters.setdefault("control_rate_hz", CONTROL_RATE_HZ)
    sim = dict(SIM, cmd_vel_stamped=node_parameters.get("base_output") == "twist_stamped")
    return start_stand_in(ros.graph, ros.namespace, str(checkpoint), sim_parameters=sim,
                          node_parameters=node_parameters)


def operator_for(ros, scenes, handlers):
    from rt1_ros.closed_loop.trial_rehearsal import ScriptedOperator

    return ros.add(ScriptedOperator(ros.namespace, ros.context, {e: s[:2] for e, s in scenes.items()},
                                    handlers=handlers))


class Commands:
    """Every cmd_vel (TwistStamped) the robot received, in order, for waiting on."""

    def __init__(self, node) -> None:
        from geometry_msgs.msg import TwistStamped

        from rt1_ros.node import qos

        self.condition = threading.Condition()
        self.received: list = []
        node.create_subscription(TwistStamped, "cmd_vel", self._on_command, qos.COMMANDS_AND_STATE)

    def _on_command(self, message) -> None:
        with self.condition:
            self.received.append(message)
            self.condition.notify_all()

    def wait_for(self, predicate, start: int, timeout_s: float) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: any(predicate(m) for m in self.received[start:]), timeout_s)

    def count(self) -> int:
        with self.condition:
            return len(self.received)


def is_zero(command) -> bool:
    twist = command.twist
    return twist.linear.x == 0.0 and twist.linear.y == 0.0 and twist.angular.z == 0.0


def final_stop(commands: list):
    """The command that began the trailing run of zero commands (None when the last one still moves)."""
    index = len(commands)
    while index > 0 and is_zero(commands[index - 1]):
        index -= 1
    return commands[index] if index < len(commands) else None


def read_records(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "trials.jsonl").read_text(encoding="utf-8").splitlines()]


def bag_verdict(output: Path, record: dict) -> dict:
    metadata = yaml.safe_load((output / record["bag"] / "metadata.yaml").read_text(encoding="utf-8"))
    return metadata["rosbag2_bagfile_information"]["custom_data"]


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("stop_from", ["service", "terminal"])
def test_an_operator_stop_mid_motion_sends_zero_motion_within_one_control_period(ros, scenes, tmp_path, stop_from):
    from ros_harness import biased_checkpoint

    from rt1_ros.closed_loop.trials import TrialRun, TrialSettings
    from rt1_ros.node.ros_graph import NANOSECONDS, stamp_ns

    checkpoint = biased_checkpoint(tmp_path / "drive", mode=1, bins={7: 230})  # the base drives forward
    stand_in(ros, checkpoint, base_output="twist_stamped")  # stamped: each command carries the node's clock
    commands = Commands(ros.peer)
    read_end, write_end = os.pipe()
    terminal, keys = os.fdopen(read_end, "r"), os.fdopen(write_end, "w")
    asked = {}

    def type_line(text: str) -> None:
        keys.write(text + "\n")
        keys.flush()

    def stop_once_moving(operator, state):
        # The node started disabled: any motion is this episode's.
        if not commands.wait_for(lambda m: m.twist.linear.x > 0.05, 0, RUN_TIMEOUT_S):
            raise RuntimeError("the robot never moved")
        asked["stop_at_index"] = commands.count()
        if stop_from == "service":
            operator.trigger(operator.stop_client)
        else:
            type_line("")

    def answer(operator, state):
        if stop_from == "service":
            operator.verdict(False)
        else:
            type_line("n")

    operator = operator_for(ros, scenes, {"running": stop_once_moving, "verdict": answer})
    output = tmp_path / "trial"
    settings = TrialSettings(output=str(output), plan=(scenes[1][2],), episode_timeout_s=60.0)
    out = io.StringIO()
    run = TrialRun(settings, ros.graph, namespace=ros.namespace, terminal=terminal, out=out, use_sim_time=True)
    try:
        run.run()
    finally:
        run.close()
        operator.close()
        keys.close()
    assert not operator.errors, operator.errors
    [trial] = read_records(output)
    assert trial["stop_reason"] == "operator" and trial["verdict"] == "failure" and trial["steps"] >= 1
    # After the stop was asked for, the commands end in zero motion, and the first of those zeros left rt1_node
    # within one control period of the stop (both stamps on sim time).
    after_stop = commands.received[asked["stop_at_index"]:]
    stop = final_stop(after_stop)
    assert stop is not None, "the robot was still commanded to move after the stop"
    latency_s = (stamp_ns(stop.header.stamp) - trial["stopped_at_ns"]) / NANOSECONDS
    assert latency_s <= 1.0 / CONTROL_RATE_HZ, f"zero motion {latency_s:.3f} s after the stop"
    custom = bag_verdict(output, trial)
    assert custom["rt1_trial.verdict"] == "failure" and custom["rt1_trial.stop_reason"] == "operator"
    assert "| robot | 0/1, 0% (0%–79%) |" in out.getvalue()


@pytest.mark.ros
@pytest.mark.slow
def test_a_terminal_operator_skips_an_attempt_and_scores_the_rerun(ros, scenes, tmp_path):
    from ros_harness import biased_checkpoint

    from rt1_ros.closed_loop.trials import TrialRun, TrialSettings

    checkpoint = biased_checkpoint(tmp_path / "terminate", mode=2, bins={})  # terminates at once
    stand_in(ros, checkpoint)
    read_end, write_end = os.pipe()
    terminal, keys = os.fdopen(read_end, "r"), os.fdopen(write_end, "w")

    def type_line(text: str) -> None:
        keys.write(text + "\n")
        keys.flush()

    def scene(operator, state):
        operator.lay_out(state)
        type_line("")

    def answer(operator, state):
        if state["attempt"] == 1:
            type_line("maybe")  # not an answer: asked again
            type_line("s")
        else:
            type_line("y")

    operator = operator_for(ros, scenes, {"scene": scene, "verdict": answer})
    output = tmp_path / "trial"
    out = io.StringIO()
    run = TrialRun(TrialSettings(output=str(output), plan=(scenes[1][2],), episode_timeout_s=60.0), ros.graph,
                   namespace=ros.namespace, terminal=terminal, out=out, use_sim_time=True)
    try:
        report = run.run()
    finally:
        run.close()
        operator.close()
        keys.close()
    assert not operator.errors, operator.errors
    skipped, scored = read_records(output)
    assert (skipped["attempt"], skipped["verdict"]) == (1, "skip")
    assert (scored["attempt"], scored["verdict"]) == (2, "success")
    assert skipped["stop_reason"] == scored["stop_reason"] == "terminate"
    assert bag_verdict(output, skipped)["rt1_trial.verdict"] == "skip"
    assert bag_verdict(output, scored)["rt1_trial.verdict"] == "success"
    assert "answer y (success), n (failure), s (skip" in out.getvalue()
    table = (output / "results.md").read_text(encoding="utf-8")
    assert table == report["table_markdown"] and table in out.getvalue()
    assert "| robot | 1/1, 100% (21%–100%) |" in table and "skipped attempts: 1" in table


@pytest.mark.ros
@pytest.mark.slow
def test_a_run_killed_mid_motion_resumes_without_losing_its_scored_episode(ros, scenes, tmp_path):
    """rt1-trial as its own process, SIGKILLed while the robot drives in episode 2, then started again."""
    from ros_harness import biased_checkpoint

    checkpoint = biased_checkpoint(tmp_path / "drive", mode=1, bins={7: 230})
    rt1, _ = stand_in(ros, checkpoint)
    output = tmp_path / "trial"
    command = [sys.executable, "-m", "rt1_ros.closed_loop.trials", "--output", str(output),
               "--episode-timeout-s", "2", "--no-prompt"]
    for episode in (1, 2):
        command += ["--instruction", f"[move_near] {scenes[episode][2].instruction}"]
    command += ["--ros-args", "-r", f"__ns:={ros.namespace}", "-p", "use_sim_time:=true"]
    sessions: list[str] = []
    enabled_when_resumed: list[bool] = []
    killed = threading.Event()
    processes: list[subprocess.Popen] = []

    def scene(operator, state):
        if state["session"] not in sessions:
            sessions.append(state["session"])
            if len(sessions) == 2:
                enabled_when_resumed.append(rt1.controller.enabled)
        operator.set_scene(state)

    def running(operator, state):
        if state["session"] == sessions[0] and state["episode"] == 2:
            processes[-1].send_signal(signal.SIGKILL)  # rt1_node was enabled before this state went out
            killed.set()
        # else: the 2 s timeout ends the episode

    def answer(operator, state):
        operator.verdict(state["episode"] == 1)

    operator = operator_for(ros, scenes, {"scene": scene, "running": running, "verdict": answer})
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    try:
        with open(logs[0], "w", encoding="utf-8") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        assert killed.wait(RUN_TIMEOUT_S), logs[0].read_text(encoding="utf-8")
        assert processes[0].wait(timeout=60) == -signal.SIGKILL
        [first] = read_records(output)
        kept = (output / "trials.jsonl").read_bytes()
        assert first["episode"] == 1 and first["verdict"] == "success" and first["stop_reason"] == "timeout"
        # The crash left the policy enabled, as it would leave a real robot driving.
        assert rt1.controller.enabled

        with open(logs[1], "w", encoding="utf-8") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        assert processes[1].wait(timeout=RUN_TIMEOUT_S) == 0, logs[1].read_text(encoding="utf-8")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
        operator.close()
    assert not operator.errors, operator.errors
    assert enabled_when_resumed == [False]  # the new run disabled the robot before it asked for a scene
    assert (output / "trials.jsonl").read_bytes().startswith(kept)
    assert json.loads((output / "trial.json").read_text())["policy"]["checkpoint"] == str(checkpoint.resolve())
    records = read_records(output)
    assert [(r["episode"], r["verdict"]) for r in records] == [(1, "success"), (2, "failure")]
    second = records[1]
    assert (second["episode"], second["attempt"], second["verdict"]) == (2, 1, "failure")
    assert second["session"] == sessions[1] != first["session"]
    assert bag_verdict(output, second)["rt1_trial.verdict"] == "failure"
    printed = logs[1].read_text(encoding="utf-8")
    assert "resuming" in printed and "| robot | 1/2, 50% (9%–91%) |" in printed
    assert not rt1.controller.enabled
