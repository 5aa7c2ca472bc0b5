"""The throughput section: training-shaped batches (B,6,3,S,S), forward + cross-entropy + backward, samples/s."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rt1_ros.configuration.action_layout import NUM_ACTION_DIMS
from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.measurement import PeakMemory, Timings, time_calls
from rt1_ros.model.rt1 import RT1, RT1Config


@dataclass
class TrainingThroughput:
    batch: int
    frames: int
    image_size: int
    step: Timings
    memory: PeakMemory

    @property
    def samples_per_s(self) -> float:
        return round(self.batch / (float(np.median(self.step.wall_ms)) / 1000.0), 3)

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "frames": self.frames, "image_size": self.image_size,
                "step": self.step.as_dict(), "samples_per_s": self.samples_per_s, "memory": self.memory.as_dict()}

    def row(self, size: str) -> str:
        return (f"training {size}: batch {self.batch}x{self.frames} frames @ {self.image_size} px, "
                f"forward+backward {self.step.wall['median']:.0f} ms -> {self.samples_per_s:.2f} samples/s, "
                f"peak RSS {self.memory.peak_rss_mb:.0f} MB")


@dataclass
class ThroughputResult:
    by_model: dict[str, TrainingThroughput]

    def as_dict(self) -> dict[str, Any]:
        return {size: run.as_dict() for size, run in self.by_model.items()}

    def format(self) -> list[str]:
        if not self.by_model:
            return []
        return [""] + [run.row(size) for size, run in self.by_model.items()]


def bench_throughput(config: BenchConfig, device: torch.device) -> ThroughputResult:
    results: dict[str, TrainingThroughput] = {}
    for size in config.models:
        batch = config.throughput.batches.get(size)
        if batch:
            results[size] = training_throughput(size, batch, config, device)
    return ThroughputResult(results)


def training_throughput(size: str, batch: int, config: BenchConfig, device: torch.device) -> TrainingThroughput:
    """Forward + cross-entropy over the 11 dimensions + backward on a (batch, 6, 3, S, S) batch, train mode."""
    torch.manual_seed(0)
    model = RT1(RT1Config.from_yaml(size)).to(device).train()
    frames, image_size = model.config.num_frames, model.config.image_size
    images = torch.rand(batch, frames, 3, image_size, image_size, device=device)
    text = torch.randn(batch, 384, device=device)
    targets = torch.randint(0, model.config.num_bins, (batch, NUM_ACTION_DIMS), device=device)

    def step(_: int) -> None:
        model.zero_grad(set_to_none=True)
        logits = model(images, text)
        nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()

    with PeakMemory() as memory:
        timings = time_calls(step, config.throughput.warmup_steps, config.throughput.steps,
                             config.max_seconds_per_measurement)
    return TrainingThroughput(batch=batch, frames=frames, image_size=image_size, step=timings, memory=memory)
