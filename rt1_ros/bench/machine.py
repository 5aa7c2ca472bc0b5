"""The machine section: what the numbers were measured on, and under how much load from other jobs."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class MachineState:
    cpu: str
    logical_cpus: int | None
    load_average: list[float]
    torch: str
    torch_default_threads: int
    omp_wait_policy: str
    python: str
    cuda: str | None
    time: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self, num_threads: int, load_at_end: list[float]) -> list[str]:
        return [f"machine: {self.cpu}, {self.logical_cpus} CPUs, torch {self.torch}, {num_threads} intra-op "
                f"thread(s), load average {format_load(self.load_average)} at start, "
                f"{format_load(load_at_end)} at end"]


def machine_state() -> MachineState:
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return MachineState(cpu=cpu_model, logical_cpus=os.cpu_count(), load_average=list(os.getloadavg()),
                        torch=torch.__version__, torch_default_threads=torch.get_num_threads(),
                        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""), python=platform.python_version(),
                        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def format_load(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)
