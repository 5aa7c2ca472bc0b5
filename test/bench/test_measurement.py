"""rt1_ros.bench.measurement: summary statistics, and how a skipped section reports itself."""
from __future__ import annotations

import pytest

from rt1_ros.bench.measurement import Skipped, summarise_ms


def test_summary_statistics():
    summary = summarise_ms([float(v) for v in range(1, 101)])
    assert summary["n"] == 100 and summary["median"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1) and summary["p99"] == pytest.approx(99.01)
    assert summarise_ms([]) == {"n": 0}


def test_a_skipped_section_writes_its_reason_to_the_json_and_one_table_line():
    skipped = Skipped("no {CUDA} device", "cuda paths: skipped ({reason})", blank_line_before=True)
    assert skipped.as_dict() == {"skipped": "no {CUDA} device"}
    assert skipped.format() == ["", "cuda paths: skipped (no {CUDA} device)"]
