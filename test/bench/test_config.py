"""rt1_ros.bench.config: both sections of config/bench.yaml load."""
from __future__ import annotations

from rt1_ros.bench.config import BenchConfig


def test_both_configurations_load():
    default, smoke = BenchConfig.from_yaml("default"), BenchConfig.from_yaml("smoke")
    assert default.steps >= 50 and set(default.models) == {"tiny", "paper"}
    assert smoke.models == ("tiny",)
