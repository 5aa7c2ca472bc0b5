"""Measurement primitives every section shares: timed calls, peak memory, ratios, and the skipped-section result."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch


class SectionResult(Protocol):
    """What every section returns: its block of the JSON and its lines of the printed table."""

    def as_dict(self) -> Any: ...

    def format(self) -> list[str]: ...


@dataclass(frozen=True)
class Skipped:
    """A section that did not run, and why: ``{"skipped": reason}`` in the JSON, one line in the table."""

    reason: str
    line: str  # the table line; "{reason}" is replaced by the reason
    blank_line_before: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"skipped": self.reason}

    def format(self) -> list[str]:
        return ([""] if self.blank_line_before else []) + [self.line.replace("{reason}", self.reason)]


def summarise_ms(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)), "mean": float(values.mean()), "min": float(values.min()),
            "max": float(values.max())}


def ratio(slow: list[float], fast: list[float]) -> float | None:
    """median(slow) / median(fast), rounded to 2 decimals; None when either has no samples."""
    if not slow or not fast:
        return None
    return round(float(np.median(slow) / np.median(fast)), 2)


@dataclass
class Timings:
    wall_ms: list[float] = field(default_factory=list)
    thread_cpu_ms: list[float] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def wall(self) -> dict[str, float]:
        return summarise_ms(self.wall_ms)

    @property
    def thread_cpu_median(self) -> float | None:
        return summarise_ms(self.thread_cpu_ms)["median"] if self.thread_cpu_ms else None

    def as_dict(self) -> dict[str, Any]:
        result = {"wall_ms": summarise_ms(self.wall_ms), "stopped_early": self.stopped_early}
        if self.thread_cpu_ms:
            result["thread_cpu_ms"] = summarise_ms(self.thread_cpu_ms)
        return result


def time_calls(call: Callable[[int], Any], warmup: int, steps: int, max_seconds: float) -> Timings:
    """Run call(i) for warm-up then timed steps; stop timing early (flagged) once ``max_seconds`` have passed."""
    for i in range(warmup):
        call(i)
    synchronise()
    timings = Timings()
    # The calling thread's CPU time only equals the step's CPU time when torch runs no worker threads.
    count_cpu = torch.get_num_threads() == 1 and not torch.cuda.is_available()
    deadline = time.perf_counter() + max_seconds
    for i in range(steps):
        cpu_started, started = time.thread_time(), time.perf_counter()
        call(warmup + i)
        synchronise()
        timings.wall_ms.append((time.perf_counter() - started) * 1000.0)
        if count_cpu:
            timings.thread_cpu_ms.append((time.thread_time() - cpu_started) * 1000.0)
        if time.perf_counter() > deadline and i + 1 < steps:
            timings.stopped_early = True
            break
    return timings


def synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PeakMemory:
    """Peak resident memory of this process over a section: Linux's VmHWM, reset on entry through clear_refs.

    The peaks are kept rounded to 0.1 MB, as the JSON reports them, so the table prints the same numbers."""

    peak_rss_mb: float
    cuda_max_allocated_mb: float | None

    def __enter__(self) -> "PeakMemory":
        self.reset_supported = _reset_peak_rss()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        self.peak_rss_mb = round(_status_kb("VmHWM") / 1024.0, 1)
        self.cuda_max_allocated_mb = (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                                      if torch.cuda.is_available() else None)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"peak_rss_mb": self.peak_rss_mb}
        if not self.reset_supported:
            result["note"] = "peak RSS could not be reset: this is the process's peak so far"
        if self.cuda_max_allocated_mb is not None:
            result["cuda_max_allocated_mb"] = self.cuda_max_allocated_mb
        return result


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
