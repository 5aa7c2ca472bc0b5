"""README's results block: made from a report run's record, and put between README's markers."""
import pytest

from rt1_ros.closed_loop.readme_results import README_BLOCK, results_block


def _record(pick_successes: int) -> dict:
    def row(successes, episodes=50):
        return {"successes": successes, "episodes": episodes, "wilson95": [successes / episodes / 2, 1.0]}

    return {"date": "2026-12-06", "command": "rt1-eval --condition all --split report", "mode": "ros",
            "seeds": {"split": "report", "first": 1000000, "last": 1000049},
            "conditions": ["seen", "camera"], "families": ["pick", "push"],
            "rows": {"seen/pick": row(pick_successes), "seen/push": row(40), "seen/all": row(40 + pick_successes, 100),
                     "camera/pick": row(30), "camera/push": row(20), "camera/all": row(50, 100)}}


def test_each_condition_is_a_row_and_each_family_a_column_with_its_interval():
    block = results_block(_record(45), "models/rt1_sim")
    lines = block.splitlines()
    assert lines[0] == "| condition | pick | push |"
    assert lines[2] == "| seen | 90% (45%–100%) | 80% (40%–100%) |"
    assert lines[3] == "| camera | 60% (30%–100%) | 40% (20%–100%) |"
    assert "50 episodes per family" in block and "rt1-eval --condition all --split report" in block
    assert results_block(_record(44), "models/rt1_sim") != block  # the table follows the record


def test_the_block_replaces_what_lies_between_the_markers_only():
    begin, end = README_BLOCK.begin, README_BLOCK.end
    text = f"# title\n{begin}\nold table\n{end}\nafter\n"
    replaced = README_BLOCK.replace(text, "new table")
    assert replaced == f"# title\n{begin}\nnew table\n{end}\nafter\n"
    assert README_BLOCK.current(replaced) == "new table"
    with pytest.raises(ValueError, match="markers"):
        README_BLOCK.replace("# no markers\n", "new table")
