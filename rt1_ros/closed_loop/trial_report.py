"""The results of an rt1-trial run: its verdicts summarised in rt1-eval's table, with 95 % Wilson intervals, and
written to <output>/results.json and results.md."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rt1_ros.closed_loop.success_table import EpisodeOutcome, markdown_table, summarise
from rt1_ros.closed_loop.trial_session import STOP_REASONS, write_durably


def trial_report(plan_record: dict, records: list[dict], policy: dict) -> dict:
    """Summary and tables of the verdicts in ``records``, in rt1-eval's form (`rt1_ros.closed_loop.success_table`)."""
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


def write_report(output: Path, report: dict) -> None:
    write_durably(output / "results.json", json.dumps(report, indent=1) + "\n")
    write_durably(output / "results.md", report["table_markdown"])
