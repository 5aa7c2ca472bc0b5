"""The resumable record of an rt1-trial run in its output folder: trial.json (the plan, the condition and the
policy of the first session), trials.jsonl (every verdict given, one line each, on disk before the run goes on) and
the lock that keeps a second run off the same output."""
from __future__ import annotations

import datetime
import fcntl
import json
import os
from pathlib import Path
from typing import TextIO

from rt1_ros.closed_loop.trial_plan import TrialTask

STOP_REASONS = ("terminate", "timeout", "operator")  # a record's stop_reason
PLAN_FILE = "trial.json"
TRIALS_FILE = "trials.jsonl"
PLAN_FORMAT = 1


class TrialError(RuntimeError):
    """Something the operator must fix before trials can run (no rt1_node, a different plan in the output, ...)."""


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path: Path, text: str) -> None:
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
    write_durably(path, json.dumps(stored, indent=1) + "\n")
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


def lock_output(output: Path) -> TextIO:
    """An exclusive lock on <output>/.lock for as long as the run lives (the kernel drops it when the process dies):
    two runs must never append to one trials file."""
    stream = open(output / ".lock", "a", encoding="utf-8")
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.close()
        raise TrialError(f"another rt1-trial is running on {output}") from None
    return stream


def same_policy(stored: dict, current: dict) -> bool:
    """Whether two sessions' rt1_node parameters name the same policy: the checkpoint, or for an untrained model its
    size (the node's name and namespace may differ between sessions)."""
    keys = ("checkpoint",) if current.get("checkpoint") else ("checkpoint", "model_size")
    return all(stored.get(key) == current.get(key) for key in keys)
