"""The latency section: per model size, the cached control step vs the full 6-frame recompute, on the eager
reference and on the optimised path, with their tokens compared step by step; plus the thread sweep."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.control_steps import (TokenCheck, cached_steps, check_optimised_tokens, full_recompute_steps,
                                         make_policy)
from rt1_ros.bench.fixtures import camera_frames, untrained_model
from rt1_ros.bench.measurement import PeakMemory, Timings, ratio
from rt1_ros.model.rt1 import count_parameters
from rt1_ros.inference.options import REFERENCE, InferenceOptions

# The torch path's optimisations (BatchNorm folded, channels-last): this section is about the token cache and threads
# on one path; the backends section (backends.py) compares torch with the ONNX Runtime and OpenVINO backends.
TORCH_OPTIMISED = InferenceOptions(backend="torch")

TABLE_HEADER = (f"{'model':6} {'path':10} {'mode':15} {'median':>9} {'p90':>9} {'p99':>9} {'cpu med':>9} "
                f"{'n':>4}  notes")


@dataclass
class PathLatency:
    """One inference path of one model: cached and full-recompute timings, and whether their tokens agreed."""

    description: str
    cached: Timings
    full_recompute: Timings
    cached_tokens_equal_full: bool
    steps_compared: int
    memory: PeakMemory

    @property
    def speedup_cached_vs_full(self) -> float | None:
        return ratio(self.full_recompute.wall_ms, self.cached.wall_ms)

    @property
    def speedup_cached_vs_full_thread_cpu(self) -> float | None:
        return ratio(self.full_recompute.thread_cpu_ms, self.cached.thread_cpu_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"description": self.description,
                "cached": self.cached.as_dict(), "full_recompute": self.full_recompute.as_dict(),
                "speedup_cached_vs_full": self.speedup_cached_vs_full,
                "speedup_cached_vs_full_thread_cpu": self.speedup_cached_vs_full_thread_cpu,
                "cached_tokens_equal_full": self.cached_tokens_equal_full, "steps_compared": self.steps_compared,
                "memory": self.memory.as_dict()}

    def rows(self, size: str, name: str) -> list[str]:
        lines = []
        for mode, timings in (("cached", self.cached), ("full_recompute", self.full_recompute)):
            wall = timings.wall
            note = ""
            if mode == "cached":
                note = (f"{self.speedup_cached_vs_full}x vs full; tokens "
                        f"{'==' if self.cached_tokens_equal_full else '!='} full; "
                        f"peak RSS {self.memory.peak_rss_mb:.0f} MB")
            lines.append(f"{size:6} {name:10} {mode:15} {wall['median']:9.1f} {wall['p90']:9.1f} "
                         f"{wall['p99']:9.1f} {_format_ms(timings.thread_cpu_median):>9} {wall['n']:4}  {note}")
        return lines


@dataclass
class ModelLatency:
    parameters_m: float
    image_size: int
    reference: PathLatency
    optimised: PathLatency
    optimised_vs_reference_tokens: TokenCheck

    @property
    def speedup_cached_optimised_vs_full_reference(self) -> float | None:
        return ratio(self.reference.full_recompute.wall_ms, self.optimised.cached.wall_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"parameters_m": self.parameters_m, "image_size": self.image_size,
                "reference": self.reference.as_dict(), "optimised": self.optimised.as_dict(),
                "speedup_cached_optimised_vs_full_reference": self.speedup_cached_optimised_vs_full_reference,
                "optimised_vs_reference_tokens": self.optimised_vs_reference_tokens.as_dict()}

    def rows(self, size: str) -> list[str]:
        check = self.optimised_vs_reference_tokens
        return (self.reference.rows(size, "reference") + self.optimised.rows(size, "optimised")
                + [f"{size:6} optimised vs reference tokens: agreement {check.token_agreement:.3f} on "
                   f"{check.frames} frames, max |logit diff| {check.max_abs_logit_difference:.2e}, "
                   f"logits move {check.input_dependence:.2e} between frames"
                   + (" — VACUOUS: the model ignores its input" if check.vacuous else "")])


@dataclass
class LatencyResult:
    by_model: dict[str, ModelLatency]

    def as_dict(self) -> dict[str, Any]:
        return {size: entry.as_dict() for size, entry in self.by_model.items()}

    def format(self) -> list[str]:
        lines = ["", TABLE_HEADER]
        for size, entry in self.by_model.items():
            lines += entry.rows(size)
        return lines


def bench_latency(config: BenchConfig, device: torch.device) -> LatencyResult:
    results: dict[str, ModelLatency] = {}
    for size in config.models:
        model = untrained_model(size)
        frames = camera_frames(max(config.steps + config.warmup_steps, config.check_frames), 320)
        paths: dict[str, PathLatency] = {}
        for name, options in (("reference", None), ("optimised", TORCH_OPTIMISED)):
            with PeakMemory() as memory:
                policy = make_policy(model, options, device)
                cached, cached_tokens = cached_steps(policy, frames, config)
                full, full_tokens = full_recompute_steps(policy, frames, config)
            compared = min(len(cached_tokens), len(full_tokens))
            identical = all(np.array_equal(a, b) for a, b in zip(cached_tokens[:compared], full_tokens[:compared]))
            paths[name] = PathLatency(description=(options or REFERENCE).describe(device), cached=cached,
                                      full_recompute=full, cached_tokens_equal_full=identical,
                                      steps_compared=compared, memory=memory)
            del policy
        results[size] = ModelLatency(
            parameters_m=round(count_parameters(model) / 1e6, 2), image_size=model.config.image_size,
            reference=paths["reference"], optimised=paths["optimised"],
            optimised_vs_reference_tokens=check_optimised_tokens(model, frames[:config.check_frames], device))
        del model
    return LatencyResult(results)


# -- thread sweep ----------------------------------------------------------------------------------------------
@dataclass
class ThreadRun:
    timings: Timings
    load_average: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {**self.timings.as_dict(), "load_average": self.load_average}


@dataclass
class ThreadSweepResult:
    model: str
    path: str
    by_threads: dict[str, ThreadRun]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "path": self.path,
                "by_threads": {threads: run.as_dict() for threads, run in self.by_threads.items()}}

    def format(self) -> list[str]:
        cells = [f"{threads} thread(s): {run.timings.wall['median']:.1f} ms (load {run.load_average[0]:.1f})"
                 for threads, run in self.by_threads.items()]
        return ["", f"thread sweep, {self.model} {self.path}: " + "; ".join(cells)]


def bench_thread_sweep(config: BenchConfig, device: torch.device) -> ThreadSweepResult:
    size = "paper" if "paper" in config.models else config.models[-1]
    model = untrained_model(size)
    frames = camera_frames(config.thread_sweep_steps + 2, 320)
    policy = make_policy(model, TORCH_OPTIMISED, device)
    results = ThreadSweepResult(model=size, path="optimised cached step", by_threads={})
    previous = torch.get_num_threads()
    try:
        for threads in config.thread_sweep:
            torch.set_num_threads(threads)
            timings, _ = cached_steps(policy, frames, config, steps=config.thread_sweep_steps, warmup=2)
            results.by_threads[str(threads)] = ThreadRun(timings, list(os.getloadavg()))
    finally:
        torch.set_num_threads(previous)
    return results


def _format_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
