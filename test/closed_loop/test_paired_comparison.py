"""Comparing two rt1-eval runs episode by episode (`rt1_ros.closed_loop.paired_comparison`)."""
from __future__ import annotations

import json
import math

import pytest

from rt1_ros.closed_loop.paired_comparison import compare, load_episodes, main, mcnemar_exact_p


def _write_run(path, checkpoint: str, outcomes: dict[tuple[str, str, int], bool], instruction=None):
    episodes = [{"condition": condition, "family": family, "seed": seed, "success": success,
                 "instruction": instruction or f"{family} {seed}", "steps": 10, "terminated": True}
                for (condition, family, seed), success in outcomes.items()]
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"settings": {"checkpoint": checkpoint}, "episodes": episodes}))
    return path


def test_exact_mcnemar_p_values():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(0, 6) == pytest.approx(2 / 64)  # 6 of 6 discordant pairs to one side
    assert mcnemar_exact_p(6, 0) == mcnemar_exact_p(0, 6)
    assert mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * (1 + 10) / 2**10)
    assert mcnemar_exact_p(11, 21) == pytest.approx(2 * sum(math.comb(32, k) for k in range(12)) / 2**32)


def test_pairs_count_who_solved_what(tmp_path):
    a = {("seen", "pick", s): s % 2 == 0 for s in range(10)} | {("seen", "push", s): True for s in range(4)} | \
        {("camera", "pick", s): False for s in range(3)}
    b = {("seen", "pick", s): s < 8 for s in range(10)} | {("seen", "push", s): s == 0 for s in range(4)} | \
        {("camera", "pick", s): True for s in range(3)}
    _, episodes_a = load_episodes(_write_run(tmp_path / "a", "A", a))
    _, episodes_b = load_episodes(_write_run(tmp_path / "b", "B", b) / "results.json")
    rows, unpaired_a, unpaired_b = compare(episodes_a, episodes_b)
    by_key = {(row.condition, row.family): row for row in rows}
    # pick, seen: A solves 0,2,4,6,8; B solves 0-7: both 0,2,4,6; only A 8; only B 1,3,5,7.
    pick = by_key[("seen", "pick")]
    assert (pick.pairs, pick.successes_a, pick.successes_b, pick.only_a, pick.only_b) == (10, 5, 8, 1, 4)
    push = by_key[("seen", "push")]
    assert (push.successes_a, push.successes_b, push.only_a, push.only_b) == (4, 1, 3, 0)
    seen = by_key[("seen", "all")]
    assert (seen.pairs, seen.only_a, seen.only_b) == (14, 4, 4) and seen.p_value == 1.0
    assert by_key[("camera", "pick")].only_b == 3
    assert [(row.condition, row.family) for row in rows] == [
        ("seen", "pick"), ("seen", "push"), ("seen", "all"), ("camera", "pick"), ("camera", "all")]
    assert (unpaired_a, unpaired_b) == (0, 0)


def test_unpartnered_episodes_are_counted_and_other_tasks_refused(tmp_path, capsys):
    a = {("seen", "pick", s): True for s in range(5)}
    b = {("seen", "pick", s): False for s in range(3, 8)}
    assert main([str(_write_run(tmp_path / "a", "A", a)), str(_write_run(tmp_path / "b", "B", b))]) == 0
    printed = capsys.readouterr().out
    assert "| seen | pick | 2 | 2 | 0 | 2 | 0 |" in printed
    assert "3 episodes of A, 3 of B" in printed
    _write_run(tmp_path / "c", "C", b, instruction="another wording")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a"), str(tmp_path / "c")])
    assert "different instructions" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "results.json").write_text("{}")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a"), str(tmp_path / "d")])
    assert "not an rt1-eval results.json" in capsys.readouterr().err
