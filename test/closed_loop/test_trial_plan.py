"""The plan of an rt1-trial run (`rt1_ros.closed_loop.trial_plan`): instructions, their columns, episodes."""
from __future__ import annotations

import pytest

from rt1_ros.closed_loop.trial_plan import TrialTask, parse_task, plan_episodes, read_tasks


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
