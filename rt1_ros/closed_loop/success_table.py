"""Success rates of closed-loop episodes, as rt1-eval and rt1-trial report them: each episode's outcome, the rows
per condition and family with 95 % Wilson intervals, and the markdown tables."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class EpisodeOutcome:
    family: str
    seed: int
    instruction: str
    success: bool
    steps: int
    terminated: bool  # the policy chose terminate (rather than running out of steps)
    wall_s: float
    inference_ms: list[float] = field(default_factory=list)
    condition: str = "seen"
    failure: str = ""  # direct mode: why it failed, from the simulator's state (rt1_ros.sim.failure_analysis)



def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate; honest at 0 and at n, unlike the normal approximation."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(outcomes: list[EpisodeOutcome]) -> dict:
    """Rows keyed ``<condition>/<family>`` and ``<condition>/all``, in the order the outcomes came."""
    summary = {}
    keys: list[tuple[str, str | None]] = []
    for outcome in outcomes:
        for key in ((outcome.condition, outcome.family), (outcome.condition, None)):
            if key not in keys:
                keys.append(key)
    keys.sort(key=lambda k: (k[1] is None,))  # families first, then each condition's "all"
    for condition, family in keys:
        mine = [o for o in outcomes if o.condition == condition and (family is None or o.family == family)]
        latencies = [ms for o in mine for ms in o.inference_ms]
        successes = sum(o.success for o in mine)
        low, high = wilson_interval(successes, len(mine))
        summary[f"{condition}/{family or 'all'}"] = {
            "condition": condition,
            "family": family or "all",
            "episodes": len(mine),
            "successes": successes,
            "success_rate": successes / len(mine),
            "wilson95": [round(low, 4), round(high, 4)],
            "mean_episode_steps": float(np.mean([o.steps for o in mine])),
            "terminated_by_policy": sum(o.terminated for o in mine),
            "inference_ms_mean": float(np.mean(latencies)) if latencies else None,
            "inference_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
            "wall_s_per_episode": float(np.mean([o.wall_s for o in mine])),
            "failures": dict(Counter(o.failure for o in mine if o.failure and not o.success)) or None,
        }
    return summary


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    low, high = row["wilson95"]
    return f"{row['successes']}/{row['episodes']}, {row['success_rate']:.0%} ({low:.0%}–{high:.0%})"


def condition_table(summary: dict, families: tuple[str, ...]) -> str:
    """One row per condition, one column per family (paper-style), each cell with its Wilson interval."""
    conditions = list(dict.fromkeys(row["condition"] for row in summary.values()))
    lines = ["| condition | " + " | ".join(families) + " | all |",
             "|---|" + "---|" * (len(families) + 1)]
    for condition in conditions:
        cells = [_cell(summary.get(f"{condition}/{family}")) for family in (*families, "all")]
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(summary: dict, mode_label: str, checkpoint: str, families: tuple[str, ...]) -> str:
    lines = [f"Evaluation of `{checkpoint}` — {mode_label}", "", condition_table(summary, families),
             "| condition / family | mean steps | policy terminated | inference ms mean / p95 | wall s / ep |",
             "|---|---|---|---|---|"]
    for key, row in summary.items():
        latency = (f"{row['inference_ms_mean']:.1f} / {row['inference_ms_p95']:.1f}"
                   if row["inference_ms_mean"] is not None else "-")
        lines.append(f"| {key} | {row['mean_episode_steps']:.1f} | {row['terminated_by_policy']} | {latency} | "
                     f"{row['wall_s_per_episode']:.1f} |")
    return "\n".join(lines) + "\n"
