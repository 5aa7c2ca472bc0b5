"""The resumable record of an rt1-trial run (`rt1_ros.closed_loop.trial_session`): trial.json, trials.jsonl."""
from __future__ import annotations

import json

import pytest

from rt1_ros.closed_loop.trial_plan import TrialTask
from rt1_ros.closed_loop.trial_session import TrialError, TrialsFile, load_or_store_plan, same_policy


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


def test_a_resumed_run_must_run_the_policy_the_first_session_ran():
    first = {"node": "/rt1_node", "checkpoint": "/models/a", "model_size": "paper"}
    assert same_policy(first, dict(first, node="/robot1/rt1_node"))
    assert not same_policy(first, dict(first, checkpoint="/models/b"))
    untrained = dict(first, checkpoint="", model_size="tiny")
    assert not same_policy(untrained, dict(untrained, model_size="paper"))
