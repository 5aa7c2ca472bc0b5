"""rt1_ros.bench.targets: the targets are judged from the JSON-shaped results."""
from __future__ import annotations

from rt1_ros.bench.targets import evaluate_targets


def test_targets_are_judged_from_the_results():
    latency = {"paper": {"optimised": {"speedup_cached_vs_full": 5.5, "speedup_cached_vs_full_thread_cpu": 5.6,
                                       "cached_tokens_equal_full": True, "cached": {"wall_ms": {"median": 250.0}}}}}
    node = {"node_overhead_ms": {"median": 3.0, "p90": 4.0}}
    targets = evaluate_targets({"latency": latency, "node": node})
    assert [t.passed for t in targets] == [True, True, False]
    assert targets[2].format().startswith("[MISS] node overhead < 2 ms per step: 3.00 ms median")
