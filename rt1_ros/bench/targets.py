"""The targets a bench run is judged against, read from its JSON-shaped results (so a saved bench.json can be
judged again)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

TARGET_CACHED_SPEEDUP = 5.0
TARGET_PAPER_STEPS_PER_S = 3.0
TARGET_NODE_OVERHEAD_MS = 2.0


@dataclass(frozen=True)
class Target:
    target: str
    value: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        return f"[{'PASS' if self.passed else 'MISS'}] {self.target}: {self.value}"


def evaluate_targets(results: Mapping[str, Any]) -> list[Target]:
    targets = []
    paper = results.get("latency", {}).get("paper")
    if paper:
        best = paper["optimised"]
        targets.append(Target(target=f"paper cached step >= {TARGET_CACHED_SPEEDUP:g}x faster than full recompute "
                                     "(same path), identical tokens",
                              value=f"{best['speedup_cached_vs_full']}x wall, "
                                    f"{best['speedup_cached_vs_full_thread_cpu']}x thread-CPU, tokens "
                                    f"{'identical' if best['cached_tokens_equal_full'] else 'DIFFER'}",
                              passed=bool(best["speedup_cached_vs_full"]
                                          and best["speedup_cached_vs_full"] >= TARGET_CACHED_SPEEDUP
                                          and best["cached_tokens_equal_full"])))
        median = best["cached"]["wall_ms"]["median"]
        targets.append(Target(target=f"paper >= {TARGET_PAPER_STEPS_PER_S:g} control steps/s on this CPU",
                              value=f"{1000.0 / median:.2f} steps/s (median {median:.0f} ms)",
                              passed=1000.0 / median >= TARGET_PAPER_STEPS_PER_S))
    node = results.get("node", {})
    if "node_overhead_ms" in node:
        overhead = node["node_overhead_ms"]["median"]
        targets.append(Target(target=f"node overhead < {TARGET_NODE_OVERHEAD_MS:g} ms per step",
                              value=f"{overhead:.2f} ms median, p90 {node['node_overhead_ms']['p90']:.2f} ms",
                              passed=overhead < TARGET_NODE_OVERHEAD_MS))
    return targets
