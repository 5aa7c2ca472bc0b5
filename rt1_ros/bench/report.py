"""A whole bench run: the JSON written to --output and the table printed, assembled from the sections' results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.machine import MachineState
from rt1_ros.bench.measurement import SectionResult
from rt1_ros.bench.targets import Target
from rt1_ros.configuration.yaml_config import to_mapping


@dataclass
class BenchReport:
    smoke: bool
    config: BenchConfig
    machine: MachineState
    # JSON key -> result, in the order the sections ran: latency, thread_sweep, backends, throughput, node,
    # node_cpu, lucidrains, cuda, profile (each only when selected).
    sections: dict[str, SectionResult] = field(default_factory=dict)
    load_average_at_end: list[float] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"smoke": self.smoke, "config": to_mapping(self.config), "machine": self.machine.as_dict(),
                **{key: result.as_dict() for key, result in self.sections.items()},
                "machine_end": {"load_average": self.load_average_at_end},
                "targets": [target.as_dict() for target in self.targets]}

    def format(self) -> str:
        """The printed table: the machine, each section's block, then every target as PASS or MISS."""
        lines = self.machine.format(self.config.num_threads, self.load_average_at_end)
        for result in self.sections.values():
            lines += result.format()
        lines.append("")
        lines += [target.format() for target in self.targets]
        return "\n".join(lines)
