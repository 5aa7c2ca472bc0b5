"""The cuda section: eager / torch.compile / CUDA graphs × fp32 / bf16 / fp16 on the GPU, each path's token
agreement with fp32 eager, and the fastest correct one; skipped without CUDA."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.control_steps import TokenCheck, cached_steps, check_optimised_tokens, make_policy
from rt1_ros.bench.fixtures import camera_frames, untrained_model
from rt1_ros.bench.measurement import PeakMemory, Skipped, Timings
from rt1_ros.inference.options import CUDA_DTYPES, InferenceOptions


@dataclass
class CudaRun:
    """One executor/dtype that ran: its cached step timings and its tokens against fp32 eager."""

    cached: Timings
    tokens: TokenCheck
    memory: PeakMemory

    def as_dict(self) -> dict[str, Any]:
        return {"cached": self.cached.as_dict(), "tokens": self.tokens.as_dict(), "memory": self.memory.as_dict()}

    def summary(self) -> str:
        return f"{self.cached.wall['median']:8.2f} ms, token agreement {self.tokens.token_agreement:.3f}"


@dataclass(frozen=True)
class CudaFailure:
    """One executor/dtype that did not run: ``kind`` is "skipped" (unsupported here) or "error" (it raised)."""

    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {self.kind: self.message}

    def summary(self) -> str:
        return self.message


@dataclass
class CudaResult:
    device: str
    model: str
    candidates: dict[str, CudaRun | CudaFailure]
    fastest_correct: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "model": self.model,
                "candidates": {name: run.as_dict() for name, run in self.candidates.items()},
                "fastest_correct": self.fastest_correct, "dtypes_known": list(CUDA_DTYPES)}

    def format(self) -> list[str]:
        return ([f"cuda ({self.device}): fastest correct path {self.fastest_correct}"]
                + [f"  {name:22} {run.summary()}" for name, run in self.candidates.items()])


def skipped(reason: str) -> Skipped:
    return Skipped(reason, "cuda paths: skipped ({reason})")


def bench_cuda(config: BenchConfig) -> CudaResult | Skipped:
    """Every executor × dtype on the paper model; the fastest one whose tokens agree with fp32 eager on at least
    ``min_token_agreement`` of the dimensions is the recommended node default for this GPU."""
    if not torch.cuda.is_available():
        return skipped("no CUDA device")
    device = torch.device("cuda")
    settings = config.cuda
    size = "paper" if "paper" in config.models else config.models[-1]
    model = untrained_model(size)
    frames = camera_frames(settings.warmup_steps + settings.steps + 1, 320)
    check = frames[:config.check_frames]
    candidates: dict[str, CudaRun | CudaFailure] = {}
    for executor in settings.executors:
        for dtype in settings.dtypes:
            if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
                candidates[f"{executor}/{dtype}"] = CudaFailure("skipped", "bf16 not supported on this GPU")
                continue
            options = InferenceOptions(cuda_executor=executor, cuda_dtype=dtype)
            name = f"{executor}/{dtype}"
            try:
                with PeakMemory() as memory:
                    policy = make_policy(model, options, device)
                    timings, _ = cached_steps(policy, frames, dataclasses.replace(
                        config, warmup_steps=settings.warmup_steps, steps=settings.steps))
                agreement = check_optimised_tokens(model, check, device, options)
            except Exception as exc:  # a path that fails on this GPU/driver is reported, the others still run
                candidates[name] = CudaFailure("error", f"{type(exc).__name__}: {exc}")
                continue
            candidates[name] = CudaRun(cached=timings, tokens=agreement, memory=memory)
            del policy
    correct = {name: c for name, c in candidates.items()
               if isinstance(c, CudaRun) and c.tokens.token_agreement >= settings.min_token_agreement}
    fastest = min(correct, key=lambda n: correct[n].cached.wall["median"]) if correct else None
    return CudaResult(device=torch.cuda.get_device_name(), model=size, candidates=candidates,
                      fastest_correct=fastest)
