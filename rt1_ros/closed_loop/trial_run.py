"""One rt1-trial run: the episodes of a plan against a running rt1_node, each through its phases (scene, start,
running, verdict, record; see `rt1_ros.closed_loop.trials`), resumed from the output's record where an earlier
session stopped."""
from __future__ import annotations

import datetime
import json
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rt1_ros.closed_loop.trial_node import RunningEpisode, TrialNode
from rt1_ros.closed_loop.trial_operator import OperatorEvent, OperatorInputs
from rt1_ros.closed_loop.trial_plan import TrialTask
from rt1_ros.closed_loop.trial_report import trial_report, write_report
from rt1_ros.closed_loop.trial_session import (PLAN_FILE, TRIALS_FILE, TrialError, TrialsFile, load_or_store_plan,
                                               lock_output, same_policy, write_durably)
from rt1_ros.node import qos


@dataclass(frozen=True)
class TrialSettings:
    output: str
    plan: tuple[TrialTask, ...] | None = None  # None: continue the plan stored in output
    condition: str | None = None  # the table's row label ("robot" for a new run)
    policy_node: str = "rt1_node"  # relative to this node's namespace, or absolute
    episode_timeout_s: float = 120.0  # on this node's clock
    record: bool = True  # each attempt as rosbag2/MCAP in <output>/episodes/
    camera_record_hz: float = 5.0  # camera frames kept per second in the bag (0 = every frame)
    service_timeout_s: float = 10.0


class TrialRun:
    """Runs the episodes of ``settings`` against a running rt1_node, in ``graph`` (an `InProcessGraph`), taking the
    operator's input from the services and, when ``terminal`` is given, from its lines. ``namespace`` and
    ``use_sim_time`` are for a caller that builds the graph itself (the command line sets both with --ros-args)."""

    def __init__(self, settings: TrialSettings, graph, namespace: str | None = None,
                 terminal: TextIO | None = None, out: TextIO | None = None, use_sim_time: bool = False) -> None:
        self.settings = settings
        self.output = Path(settings.output)
        self.out = out or sys.stdout
        self.session = uuid.uuid4().hex[:12]
        if settings.plan is None and not (self.output / PLAN_FILE).exists():
            raise TrialError(f"{self.output} has no {PLAN_FILE}: give --instruction or --instructions-file to start")
        self.output.mkdir(parents=True, exist_ok=True)
        self._lock_stream = lock_output(self.output)
        try:
            self.plan_record = load_or_store_plan(self.output, list(settings.plan) if settings.plan else None,
                                                  settings.condition)
        except BaseException:
            self._lock_stream.close()
            raise
        self.plan = [TrialTask(**entry) for entry in self.plan_record["plan"]]
        self.trials = TrialsFile(self.output / TRIALS_FILE)
        self.operator = OperatorInputs()
        self.node = TrialNode(graph, self.operator, settings.policy_node, namespace, settings.service_timeout_s,
                              self.operator_stop, use_sim_time)
        self._graph = graph
        self.recorder = None  # made once rt1_node's output types are known
        self._msgtypes: dict[str, str] = {}
        # What rt1_node runs, once asked; a run that only prints its table has the first session's in trial.json.
        self.policy: dict = dict(self.plan_record.get("policy") or {"node": self.node.policy_node})
        self._prepared = False
        self._terminal = terminal
        if terminal is not None:
            threading.Thread(target=self._read_terminal, name="rt1_trial_terminal", daemon=True).start()

    # -- operator input --------------------------------------------------------------------------------------------
    def operator_stop(self, source: str) -> tuple[bool, str]:
        """The operator's stop (service or terminal): rt1_node's `~/enable false` at once, in every phase; in the
        running phase it also ends the episode."""
        now = self.node.now_ns()
        self.node.disable_now()
        accepted, _ = self.operator.offer(OperatorEvent("stop", now))
        if accepted:
            return True, f"episode stopped ({source}); rt1_node disabled"
        return True, f"no episode running; rt1_node disabled ({source})"

    def _read_terminal(self) -> None:
        answers = {"y": "success", "yes": "success", "n": "failure", "no": "failure", "s": "skip", "skip": "skip",
                   "q": "quit", "quit": "quit"}
        for line in self._terminal:
            word = line.strip().lower()
            phase = self.operator.phase
            if phase == "running":
                self.operator_stop("terminal")
            elif phase == "scene":
                kind = "quit" if word in ("q", "quit") else "scene_ready"
                self.operator.offer(OperatorEvent(kind, self.node.now_ns()))
            elif phase == "verdict":
                kind = answers.get(word)
                if kind is None:
                    self._say("  answer y (success), n (failure), s (skip: run it again) or q (quit)")
                else:
                    self.operator.offer(OperatorEvent(kind, self.node.now_ns()))

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _enter(self, phase: str, **state) -> int:
        token = self.operator.enter(phase)
        self._publish_state(phase, **state)
        return token

    def _publish_state(self, phase: str, **state) -> None:
        scored = [r for r in self.trials.records if r["verdict"] != "skip"]
        self.node.publish_state({"session": self.session, "phase": phase, "episodes": len(self.plan),
                                 "scored": len(scored), "successes": sum(r["verdict"] == "success" for r in scored),
                                 **state})

    # -- the run ---------------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Every episode without a verdict, in order; -> the report (also written to the output)."""
        remaining = [i for i in range(len(self.plan)) if self.trials.scored(i + 1) is None]
        if remaining and len(remaining) < len(self.plan):
            self._say(f"resuming {self.output}: {len(self.plan) - len(remaining)} of {len(self.plan)} episodes "
                      f"scored; next: episode {remaining[0] + 1}")
        try:
            if remaining:
                self._prepare()
            for index in remaining:
                while self.trials.scored(index + 1) is None:
                    if self._episode(index + 1, self.plan[index]) is None:
                        self._say("run ended by the operator; the same command continues it")
                        return self._finish()
            return self._finish()
        finally:
            self.node.running = None
            if self._prepared:
                self._disable_at_exit()

    def _prepare(self) -> None:
        self.node.wait_for_services()
        # Before anything else: a run that died mid-episode left rt1_node enabled.
        self.node.set_enabled(False)
        self._prepared = True
        self.node.wait_until_connected()
        values = self.node.policy_parameters(("checkpoint", "model_size", "control_rate_hz", "control_trigger",
                                              "base_output"))
        self.policy = {"node": self.node.policy_node, **values}
        self._check_policy()
        if self.settings.record:
            from rt1_ros.closed_loop.episode_bag import EpisodeBagRecorder

            if values["base_output"] == "twist_stamped":
                self._msgtypes["cmd_vel"] = "geometry_msgs/msg/TwistStamped"
            # The robot's camera may publish best effort; a best-effort subscription receives from either kind.
            self.recorder = self._graph.add(EpisodeBagRecorder(
                self.node.node.get_namespace(), self._graph.context, msgtypes=self._msgtypes,
                profiles={"camera/image_raw": qos.camera("best_effort")},
                max_rate_hz={"camera/image_raw": self.settings.camera_record_hz}))
        policy = values["checkpoint"] or f"untrained {values['model_size']}"
        self._say(f"rt1_node {self.node.policy_node}: {policy}, {values['control_trigger']} trigger at "
                  f"{values['control_rate_hz']} Hz; disabled")

    def _check_policy(self) -> None:
        """The first session keeps its policy in trial.json; a later one must run the same, or its verdicts would
        be counted with another policy's."""
        stored = self.plan_record.get("policy")
        if stored is None:
            self.plan_record["policy"] = self.policy
            write_durably(self.output / PLAN_FILE, json.dumps(self.plan_record, indent=1) + "\n")
            return
        if not same_policy(stored, self.policy):
            raise TrialError(f"{self.output} was run with {stored.get('checkpoint') or 'untrained'}; "
                             f"{self.node.policy_node} runs {self.policy['checkpoint'] or 'untrained'}: "
                             "a new --output for another policy")

    def _episode(self, episode: int, task: TrialTask) -> dict | None:
        """One attempt at ``episode``: its record, or None when the operator quit."""
        attempt = self.trials.attempts(episode) + 1
        about = {"episode": episode, "attempt": attempt, "task": task.task, "instruction": task.instruction}
        self.node.set_enabled(False)
        token = self._enter("scene", **about)
        name = self.node.node.get_fully_qualified_name()
        self._say(f"\n[episode {episode}/{len(self.plan)}, attempt {attempt}] {task.task}: {task.instruction!r}\n"
                  f"  set the scene, then Enter (or {name}/scene_ready); q + Enter ends the run")
        if self.operator.wait(token).kind == "quit":
            return None

        if self.recorder is not None:
            self.recorder.start()
        self.node.publish_instruction(task.instruction)
        self.node.reset_policy()
        # rt1_node's own word that it runs this instruction, from a step after the reset (it steps while disabled).
        # rt1_action comes in publication order, so any action of an earlier episode arrives before this one and
        # cannot be taken for this episode's terminate.
        mark = self.node.action_count()
        if not self.node.wait_for_action(mark, lambda text, enabled, mode: text == task.instruction and not enabled,
                                         self.settings.service_timeout_s):
            raise TrialError(f"{self.node.policy_node} published no rt1_action for {task.instruction!r} within "
                             f"{self.settings.service_timeout_s:g} s: no camera images (control_trigger image)?")
        # The running phase takes a stop (or terminate) from now on; a display hears of it once motion is on.
        token = self.operator.enter("running")
        running = RunningEpisode(token=token, instruction=task.instruction)
        self.node.running = running
        timeout_s = self.settings.episode_timeout_s
        timer = None
        try:
            self.node.set_enabled(True)
            enabled_at = self.node.now_ns()
            self._publish_state("running", **about)
            timer = self.node.node.create_timer(  # on the node's clock: sim time under use_sim_time
                timeout_s, lambda: self.operator.offer(OperatorEvent("timeout", self.node.now_ns()), token=token))
            self._say(f"  running: Enter (or {name}/stop) stops the robot; it also stops on terminate or after "
                      f"{timeout_s:g} s")
            stop = self.operator.wait(token)
        finally:
            # Whatever ended the episode (an exception included), the robot stops before anything else happens.
            self.node.running = None
            self.node.set_enabled(False)
            if timer is not None:
                self.node.node.destroy_timer(timer)
        messages = self.recorder.stop() if self.recorder is not None else []
        duration_s = (stop.time_ns - enabled_at) / 1e9
        reason = "operator" if stop.kind == "stop" else stop.kind  # one of STOP_REASONS
        self._say(f"  stopped: {reason}, after {running.steps} steps, {duration_s:.1f} s")

        token = self._enter("verdict", stop_reason=reason, **about)
        self._say(f"  success? y / n / s (skip: run it again) / q (quit)  (or {name}/verdict true|false, "
                  f"{name}/skip)")
        verdict = self.operator.wait(token).kind
        if verdict == "quit":
            return None
        bag_name = f"episodes/episode_{episode:03d}_{attempt}" if self.recorder is not None else ""
        record = {"episode": episode, "attempt": attempt, "task": task.task, "instruction": task.instruction,
                  "verdict": verdict, "stop_reason": reason, "steps": running.steps,
                  "enabled_at_ns": enabled_at, "stopped_at_ns": stop.time_ns, "duration_s": round(duration_s, 3),
                  "inference_ms": running.inference_ms,
                  "bag": bag_name, "session": self.session,
                  "scored_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        self.trials.append(record)  # on disk first: a verdict must outlive whatever happens to the bag
        if self.recorder is not None:
            from rt1_ros.closed_loop.episode_bag import write_episode_bag

            custom = {f"rt1_trial.{key}": str(value) for key, value in record.items()
                      if key not in ("inference_ms", "bag")}
            custom["rt1_trial.policy"] = json.dumps(self.policy)
            write_episode_bag(self.output / bag_name, messages, custom_data=custom, msgtypes=self._msgtypes)
        scored = [r for r in self.trials.records if r["verdict"] != "skip"]
        self._say(f"  recorded: {verdict} ({sum(r['verdict'] == 'success' for r in scored)}/{len(scored)} "
                  f"successes so far)")
        return record

    def _finish(self) -> dict:
        report = trial_report(self.plan_record, self.trials.records, self.policy)
        write_report(self.output, report)
        self._enter("done")
        self._say("\n" + report["table_markdown"])
        self._say(f"saved {self.output}/results.json and results.md; every verdict in {self.output}/{TRIALS_FILE}")
        return report

    def _disable_at_exit(self) -> None:
        try:
            self.node.set_enabled(False)
        except Exception as exc:  # noqa: BLE001 — the reason is told; the exit goes on
            self._say(f"WARNING: could not disable {self.node.policy_node} on exit ({exc}): "
                      f"ros2 service call {self.node.policy_node}/enable std_srvs/srv/SetBool '{{data: false}}'")

    def close(self) -> None:
        self._lock_stream.close()
