"""rt1-trial: operator-scored trials of a running rt1_node, for a robot where no simulator state can say whether an
episode succeeded.

    rt1-trial --instruction "pick up the sponge" --episodes 10 --output outputs/trials/sponge
    rt1-trial --instructions-file kitchen.txt --output outputs/trials/kitchen --ros-args -r __ns:=/robot1
    rt1-trial --output outputs/trials/kitchen            # after a crash or a quit: continues where it stopped

rt1-trial is a ROS 2 node (`rt1_trial`) beside an rt1_node that is already running (`ros2 launch rt1_ros
rt1.launch.py`); it needs no simulator. Each episode:

  scene    rt1_node is disabled (zero motion); the operator sets the scene for the instruction shown and presses
           Enter, or calls `~/scene_ready`.
  start    the instruction is published (latched) on `instruction`, rt1_node's `~/reset` clears its history, and
           once the node reports on `rt1_action` that it runs this instruction, its `~/enable true` starts motion.
  running  until the policy terminates (rt1_action mode terminate), the episode timeout passes (on this node's
           clock: sim time under use_sim_time) or the operator stops it (Enter, or `~/stop`): then rt1_node's
           `~/enable false`, which publishes zero motion at once.
  verdict  the operator answers y / n / s (skip), or calls `~/verdict` (true = success) or `~/skip`. A skipped
           attempt is recorded but not scored, and the episode is run again.
  record   the verdict is appended to <output>/trials.jsonl (flushed and fsynced before anything else), then the
           episode's topics go to <output>/episodes/episode_<NNN>_<attempt>/ (rosbag2/MCAP) with the verdict, the
           instruction, the stop reason and the times in metadata.yaml's custom_data.

`~/stop` always disables rt1_node, whatever the phase. `~/state` (std_msgs/String, latched) carries the phase as
JSON, for a display or a scripted operator. At the end the success rates are printed with 95 % Wilson intervals, as
rt1-eval prints them, and written to <output>/results.json and results.md.

Resuming: <output>/trial.json keeps the plan (the instruction of every episode) and trials.jsonl every verdict
given. A run started on an output that has them continues with the first episode that has no verdict; an episode
that was running when the process died is run again. Nothing scored is lost: a verdict is on disk before the next
episode starts. A run killed mid-episode leaves rt1_node enabled: a new rt1-trial disables it before anything else
(and the robot's e-stop is the safety stop, not this tool).
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import queue
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rcl_interfaces.srv import GetParameters
from rclpy.duration import Duration
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from rt1_ros.msg import RT1Action
from rt1_ros.node import qos

STOP_REASONS = ("terminate", "timeout", "operator")
PLAN_FILE = "trial.json"
TRIALS_FILE = "trials.jsonl"
PLAN_FORMAT = 1
GRAPH_RECHECK_S = 0.1


class TrialError(RuntimeError):
    """Something the operator must fix before trials can run (no rt1_node, a different plan in the output, ...)."""


# ---------------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class TrialTask:
    task: str  # the table column it is counted in
    instruction: str


def parse_task(line: str) -> TrialTask:
    """``[task] instruction`` or a bare instruction (its own column)."""
    text = line.strip()
    if text.startswith("["):
        label, bracket, rest = text[1:].partition("]")
        if bracket and label.strip() and rest.strip():
            return TrialTask(task=label.strip(), instruction=" ".join(rest.split()))
    text = " ".join(text.split())
    return TrialTask(task=text, instruction=text)


def read_tasks(path: str | Path) -> list[TrialTask]:
    """One instruction per line; blank lines and lines starting with # are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [parse_task(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def plan_episodes(tasks: list[TrialTask], episodes: int | None) -> list[TrialTask]:
    """``episodes`` episodes (default one per task), going round the tasks in order."""
    if not tasks:
        raise ValueError("no instructions: give --instruction or --instructions-file")
    count = len(tasks) if episodes is None else episodes
    if count < 1:
        raise ValueError("--episodes must be at least 1")
    return [tasks[i % len(tasks)] for i in range(count)]


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_durably(path: Path, text: str) -> None:
    """Whole or not at all: a temporary file, fsynced, renamed over ``path``."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def load_or_store_plan(output: Path, plan: list[TrialTask] | None, condition: str | None) -> dict:
    """The plan of ``output``: the stored one (``plan`` None, or equal to it), or ``plan`` stored now. TrialError when
    the output holds a different plan or none is given for a new one."""
    path = output / PLAN_FILE
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("format") != PLAN_FORMAT:
            raise TrialError(f"{path}: unknown format {stored.get('format')!r}")
        stored_plan = [TrialTask(**entry) for entry in stored["plan"]]
        if plan is not None and plan != stored_plan:
            raise TrialError(f"{output} holds another plan ({len(stored_plan)} episodes, first "
                             f"{stored_plan[0].instruction!r}): give the same instructions and --episodes, none "
                             "(to continue it), or a new --output")
        if condition is not None and condition != stored["condition"]:
            raise TrialError(f"{output} was started with --condition {stored['condition']!r}")
        return stored
    if plan is None:
        raise TrialError(f"{output} has no {PLAN_FILE}: give --instruction or --instructions-file to start a run")
    output.mkdir(parents=True, exist_ok=True)
    stored = {"format": PLAN_FORMAT, "condition": condition or "robot",
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "plan": [{"task": t.task, "instruction": t.instruction} for t in plan]}
    _write_durably(path, json.dumps(stored, indent=1) + "\n")
    return stored


class TrialsFile:
    """<output>/trials.jsonl: one JSON object per line, one line per verdict given (skips included), appended,
    flushed and fsynced before the run goes on. A line cut short by a crash while it was written is dropped on
    opening (it never was a verdict on disk); any other unreadable line stops the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict] = []
        if not path.exists():
            path.touch()
            _fsync_directory(path.parent)
            return
        data = path.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            with open(path, "r+b") as stream:
                stream.truncate(len(complete))
                os.fsync(stream.fileno())
        for number, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
            try:
                self.records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TrialError(f"{path}:{number} is not a trial record ({exc}): repair or move the file") from exc

    def append(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())
        self.records.append(record)

    def scored(self, episode: int) -> dict | None:
        return next((r for r in self.records if r["episode"] == episode and r["verdict"] != "skip"), None)

    def attempts(self, episode: int) -> int:
        return sum(r["episode"] == episode for r in self.records)


def _lock_output(output: Path) -> TextIO:
    """An exclusive lock on <output>/.lock for as long as the run lives (the kernel drops it when the process dies):
    two runs must never append to one trials file."""
    stream = open(output / ".lock", "a", encoding="utf-8")
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.close()
        raise TrialError(f"another rt1-trial is running on {output}") from None
    return stream


# ---------------------------------------------------------------------------------------------------- the table
def trial_report(plan_record: dict, records: list[dict], policy: dict) -> dict:
    """Summary and tables of the verdicts in ``records``, in rt1-eval's form (`rt1_ros.closed_loop.evaluation`)."""
    from collections import Counter

    from rt1_ros.closed_loop.evaluation import EpisodeOutcome, markdown_table, summarise

    scored = [r for r in records if r["verdict"] != "skip"]
    skipped = [r for r in records if r["verdict"] == "skip"]
    condition = plan_record["condition"]
    outcomes = [EpisodeOutcome(family=r["task"], seed=r["episode"], instruction=r["instruction"],
                               success=r["verdict"] == "success", steps=r["steps"],
                               terminated=r["stop_reason"] == "terminate", wall_s=r["duration_s"],
                               inference_ms=list(r["inference_ms"]), condition=condition)
                for r in sorted(scored, key=lambda r: r["episode"])]
    tasks = tuple(dict.fromkeys(entry["task"] for entry in plan_record["plan"]))
    checkpoint = policy.get("checkpoint") or f"untrained {policy.get('model_size', '?')}"
    label = f"operator-scored trials (rt1-trial) on {policy.get('node', 'rt1_node')}"
    if not outcomes:
        table = f"Trials of `{checkpoint}` — {label}\n\nNo episode scored yet.\n"
        summary = {}
    else:
        summary = summarise(outcomes)
        table = markdown_table(summary, label, checkpoint, tuple(t for t in tasks if any(o.family == t
                                                                                        for o in outcomes)))
    stops = Counter(r["stop_reason"] for r in scored)
    table += (f"\nScored {len(scored)} of {len(plan_record['plan'])} planned episodes; stopped by "
              + ", ".join(f"{reason} ×{stops.get(reason, 0)}" for reason in STOP_REASONS)
              + f"; skipped attempts: {len(skipped)}\n")
    return {"condition": condition, "policy": policy, "plan": plan_record["plan"], "summary": summary,
            "episodes": scored, "skipped": skipped, "table_markdown": table}


def same_policy(stored: dict, current: dict) -> bool:
    """Whether two sessions' rt1_node parameters name the same policy: the checkpoint, or for an untrained model its
    size (the node's name and namespace may differ between sessions)."""
    keys = ("checkpoint",) if current.get("checkpoint") else ("checkpoint", "model_size")
    return all(stored.get(key) == current.get(key) for key in keys)


def write_report(output: Path, report: dict) -> None:
    _write_durably(output / "results.json", json.dumps(report, indent=1) + "\n")
    _write_durably(output / "results.md", report["table_markdown"])


# ---------------------------------------------------------------------------------------------------- the operator
@dataclass
class OperatorEvent:
    kind: str  # scene_ready | quit | stop | terminate | timeout | success | failure | skip
    time_ns: int = 0  # the trial node's clock when it happened


# What each phase listens to; anything else is refused with the phase named.
ACCEPTED = {"scene": {"scene_ready", "quit"}, "running": {"stop", "terminate", "timeout"},
            "verdict": {"success", "failure", "skip", "quit"}}


class OperatorInputs:
    """The phase the run is in and the events for it, from any thread (services, terminal, rt1_action, timer).

    Each phase has a token; an event is taken only for the phase it was offered in, so a late terminate or a
    button pressed twice can never count for the next episode."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.phase = "idle"
        self.token = 0
        self._events: queue.SimpleQueue[OperatorEvent] = queue.SimpleQueue()

    def enter(self, phase: str) -> int:
        with self._condition:
            self.phase = phase
            self.token += 1
            self._events = queue.SimpleQueue()
            return self.token

    def offer(self, event: OperatorEvent, token: int | None = None) -> tuple[bool, str]:
        """(accepted, why not) — accepted when the current phase (and ``token``, if given) listens to it."""
        with self._condition:
            if token is not None and token != self.token:
                return False, "that phase is over"
            if event.kind not in ACCEPTED.get(self.phase, ()):
                return False, f"the trial is in phase {self.phase!r}, which does not take {event.kind!r}"
            self._events.put(event)
            self._condition.notify_all()
            return True, ""

    def wait(self, token: int) -> OperatorEvent:
        with self._condition:
            while self.token == token:
                try:
                    return self._events.get_nowait()
                except queue.Empty:
                    self._condition.wait()
        raise RuntimeError("the phase ended while waiting for it")


# ---------------------------------------------------------------------------------------------------- the node
@dataclass
class _Running:
    """What the rt1_action callback counts for the episode that is running."""

    token: int
    instruction: str
    steps: int = 0
    inference_ms: list[float] = field(default_factory=list)


class TrialNode:
    """The ROS side: the `rt1_trial` node (services, state, instruction publisher, rt1_action subscription, clients
    of rt1_node) spinning in ``graph``. Calls from the run's thread block on futures, never on the executor."""

    def __init__(self, graph, operator: OperatorInputs, policy_node: str, namespace: str | None,
                 service_timeout_s: float, on_stop, use_sim_time: bool = False) -> None:
        self.operator = operator
        self.service_timeout_s = service_timeout_s
        self._on_stop = on_stop
        kwargs = {"namespace": namespace} if namespace is not None else {}
        if use_sim_time:
            kwargs["parameter_overrides"] = [Parameter("use_sim_time", value=True)]
        node = Node("rt1_trial", context=graph.context, **kwargs)
        self.node = node
        self.policy_node = node.resolve_topic_name(policy_node)  # its fully qualified name
        self._condition = threading.Condition()
        self._actions: list[tuple[str, bool, int]] = []  # (instruction, enabled, mode) of every rt1_action received
        self._matched = threading.Event()
        self._clock_tick = threading.Event()
        self.running: _Running | None = None  # set by the run while an episode runs

        self.instruction_publisher = node.create_publisher(
            String, "instruction", qos.LATCHED,
            event_callbacks=PublisherEventCallbacks(matched=lambda _: self._matched.set()))
        self.state_publisher = node.create_publisher(String, "~/state", qos.LATCHED)
        node.create_subscription(RT1Action, "rt1_action", self._on_action, qos.RECORDING)
        node.create_subscription(Clock, "/clock", lambda _: self._clock_tick.set(), qos.COMMANDS_AND_STATE)
        self.enable_client = node.create_client(SetBool, f"{self.policy_node}/enable")
        self.reset_client = node.create_client(Trigger, f"{self.policy_node}/reset")
        self.parameters_client = node.create_client(GetParameters, f"{self.policy_node}/get_parameters")
        node.create_service(Trigger, "~/scene_ready", self._trigger("scene_ready"))
        node.create_service(Trigger, "~/skip", self._trigger("skip"))
        node.create_service(Trigger, "~/stop", self._on_stop_service)
        node.create_service(SetBool, "~/verdict", self._on_verdict)
        graph.add(node)

    # -- services ------------------------------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _trigger(self, kind: str):
        def handle(request, response):
            response.success, response.message = self.operator.offer(OperatorEvent(kind, self.now_ns()))
            response.message = response.message or f"{kind}: ok"
            return response
        return handle

    def _on_stop_service(self, request, response):
        response.success, response.message = self._on_stop("service")
        return response

    def _on_verdict(self, request, response):
        kind = "success" if request.data else "failure"
        response.success, response.message = self.operator.offer(OperatorEvent(kind, self.now_ns()))
        response.message = response.message or f"verdict: {kind}"
        return response

    def _on_action(self, message) -> None:
        with self._condition:
            self._actions.append((message.instruction, bool(message.enabled), int(message.mode)))
            self._condition.notify_all()
        running = self.running
        if running is None or not message.enabled:
            return
        if running.instruction == message.instruction and self.operator.token == running.token:
            running.steps += 1
            if message.inference_ms > 0:
                running.inference_ms.append(round(float(message.inference_ms), 2))
        if message.mode == RT1Action.MODE_TERMINATE:
            self.operator.offer(OperatorEvent("terminate", self.now_ns()), token=running.token)

    # -- rt1_node ------------------------------------------------------------------------------------------------
    def call(self, client, request):
        """The response, or TrialError after service_timeout_s (a dead or unreachable rt1_node)."""
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.service_timeout_s):
            client.remove_pending_request(future)
            raise TrialError(f"{client.srv_name} did not answer within {self.service_timeout_s:g} s")
        return future.result()

    def set_enabled(self, enabled: bool) -> None:
        response = self.call(self.enable_client, SetBool.Request(data=enabled))
        if not response.success:
            raise TrialError(f"{self.enable_client.srv_name} refused {enabled}: {response.message}")

    def disable_now(self) -> None:
        """`~/enable false` without waiting for the answer: safe from an executor callback."""
        self.enable_client.call_async(SetBool.Request(data=False))

    def reset_policy(self) -> None:
        response = self.call(self.reset_client, Trigger.Request())
        if not response.success:
            raise TrialError(f"{self.reset_client.srv_name} failed: {response.message}")

    def policy_parameters(self, names: tuple[str, ...]) -> dict:
        response = self.call(self.parameters_client, GetParameters.Request(names=list(names)))
        return {name: parameter_value_to_python(value) for name, value in zip(names, response.values)}

    def wait_for_services(self) -> None:
        for client in (self.enable_client, self.reset_client, self.parameters_client):
            if not client.wait_for_service(timeout_sec=self.service_timeout_s):
                raise TrialError(f"no {client.srv_name}: is rt1_node running (ros2 launch rt1_ros rt1.launch.py), "
                                 "and under this namespace (--node, --ros-args -r __ns:=...)?")

    def wait_until_connected(self) -> None:
        """Until rt1_node subscribes our instruction topic and, under use_sim_time, a sim clock has arrived."""
        topic = self.instruction_publisher.topic_name
        deadline = time.monotonic() + self.service_timeout_s
        # Not before rt1_node's own subscription has matched: one that matched later would take the (latched)
        # instruction in the middle of the episode and restart it. Woken by each new match of the publisher, and
        # every GRAPH_RECHECK_S, since the graph cache that names the reader's node may lag the match.
        while True:
            self._matched.clear()
            if any(f"{info.node_namespace.rstrip('/')}/{info.node_name}" == self.policy_node
                   for info in self.node.get_subscriptions_info_by_topic(topic)):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TrialError(f"{self.policy_node} does not subscribe {topic}: remap its instruction topic or "
                                 "this node's (--ros-args -r instruction:=...)")
            self._matched.wait(min(remaining, GRAPH_RECHECK_S))
        if self.node.get_parameter("use_sim_time").value:
            while self.now_ns() == 0:
                self._clock_tick.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._clock_tick.wait(remaining):
                    raise TrialError("use_sim_time is set but no /clock arrives")

    def action_count(self) -> int:
        with self._condition:
            return len(self._actions)

    def wait_for_action(self, after: int, predicate, timeout_s: float) -> bool:
        """Until an rt1_action numbered ``after`` or later (in order of arrival) satisfies ``predicate(instruction,
        enabled, mode)``."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while not any(predicate(*action) for action in self._actions[after:]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def publish_instruction(self, text: str) -> None:
        self.instruction_publisher.publish(String(data=text))
        # Acknowledged by every matched reader (rt1_node's among them) before the reset and the enable are sent, so
        # rt1_node's executor takes the instruction before it can take the enable. A reader of a process that died
        # stays matched until its lease runs out and never acknowledges: then only the rt1_action check that
        # follows vouches for the instruction.
        if not self.instruction_publisher.wait_for_all_acked(Duration(seconds=self.service_timeout_s)):
            self.node.get_logger().warning(f"the instruction was not acknowledged by every subscriber within "
                                           f"{self.service_timeout_s:g} s (a subscriber that has gone?)")

    def publish_state(self, state: dict) -> None:
        self.state_publisher.publish(String(data=json.dumps(state)))


# ---------------------------------------------------------------------------------------------------- the run
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
        self._lock_stream = _lock_output(self.output)
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
            _write_durably(self.output / PLAN_FILE, json.dumps(self.plan_record, indent=1) + "\n")
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
        running = _Running(token=token, instruction=task.instruction)
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


# ---------------------------------------------------------------------------------------------------- the command
def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rt1-trial", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="ROS arguments go after --ros-args (remappings, use_sim_time, __ns).")
    parser.add_argument("--instruction", action="append", default=[], metavar="TEXT",
                        help="an instruction, '[task] text' to name its column (repeatable; episodes go round them)")
    parser.add_argument("--instructions-file", type=Path, default=None,
                        help="one instruction per line, '[task] text' or text; # comments")
    parser.add_argument("--episodes", type=int, default=None, help="episodes in all (default: one per instruction)")
    parser.add_argument("--output", required=True, type=Path, help="trial.json, trials.jsonl, episodes/, results.*")
    parser.add_argument("--condition", default=None, help="row label of the table (default 'robot')")
    parser.add_argument("--node", default="rt1_node", help="rt1_node's name, relative to the namespace or absolute")
    parser.add_argument("--episode-timeout-s", type=float, default=120.0,
                        help="per episode, on the node clock (sim time under use_sim_time)")
    parser.add_argument("--no-record", action="store_true", help="do not write the episodes' rosbag2/MCAP")
    parser.add_argument("--camera-record-hz", type=float, default=5.0,
                        help="camera frames kept per second in the bag (0: every frame; memory grows with it)")
    parser.add_argument("--service-timeout-s", type=float, default=10.0)
    parser.add_argument("--no-prompt", action="store_true",
                        help="take the operator's input from the services only (not from this terminal)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_arguments(remove_ros_args(args=["rt1-trial", *argv])[1:])
    tasks = [parse_task(text) for text in args.instruction]
    if args.instructions_file is not None:
        tasks += read_tasks(args.instructions_file)
    try:
        plan = plan_episodes(tasks, args.episodes) if tasks else None
    except ValueError as exc:
        print(f"rt1-trial: {exc}", file=sys.stderr)
        return 2
    if plan is None and args.episodes is not None:
        print("rt1-trial: --episodes needs instructions", file=sys.stderr)
        return 2
    settings = TrialSettings(output=str(args.output), plan=tuple(plan) if plan else None, condition=args.condition,
                             policy_node=args.node, episode_timeout_s=args.episode_timeout_s,
                             record=not args.no_record, camera_record_hz=args.camera_record_hz,
                             service_timeout_s=args.service_timeout_s)
    from rt1_ros.node.ros_graph import InProcessGraph, environment_domain_id

    # SIGTERM as Ctrl-C: the run's finally disables rt1_node before the process ends.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    graph = InProcessGraph(environment_domain_id(), args=["rt1-trial", *argv])
    run = None
    try:
        run = TrialRun(settings, graph, terminal=None if args.no_prompt else sys.stdin)
        run.run()
        return 0
    except TrialError as exc:
        print(f"rt1-trial: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nrt1-trial: interrupted; every verdict given is in trials.jsonl, the same command continues",
              file=sys.stderr)
        return 130
    finally:
        if run is not None:
            run.close()
        graph.close()


if __name__ == "__main__":
    sys.exit(main())
