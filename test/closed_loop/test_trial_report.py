"""The results table of an rt1-trial run (`rt1_ros.closed_loop.trial_report`)."""
from __future__ import annotations

from rt1_ros.closed_loop.trial_report import trial_report


def record(episode: int, verdict: str, stop_reason: str = "operator", attempt: int = 1) -> dict:
    return {"episode": episode, "attempt": attempt, "task": "pick", "instruction": "pick up the sponge",
            "verdict": verdict, "stop_reason": stop_reason, "steps": 10, "duration_s": 3.0, "inference_ms": [5.0]}


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

