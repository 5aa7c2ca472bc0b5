"""The plan of an rt1-trial run: the instructions it goes through, each with the table column it is counted in, and
the list of episodes made from them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
