"""The profile section: where a control step spends its time (stem, MBConv stages, FiLM, token learner,
transformer, heads), from forward hooks, plus torch.profiler's top operators.

(Named profiling, not profile, so that it never shadows the standard library's `profile` module.)"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.fixtures import camera_frames, instruction_embedding, untrained_model
from rt1_ros.bench.measurement import synchronise
from rt1_ros.model.rt1 import RT1, images_to_tensor
from rt1_ros.inference.image_decoding import resize_for_model
from rt1_ros.inference.options import REFERENCE, InferenceOptions
from rt1_ros.inference.paths import build_path


@dataclass(frozen=True)
class TopOperator:
    operator: str
    calls: int
    self_cpu_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"operator": self.operator, "calls": self.calls, "self_cpu_ms": self.self_cpu_ms}


@dataclass
class ProfiledPath:
    """One path's step, split into parts (ms, rounded; largest first) and their shares of the step."""

    step_ms: float
    parts_ms: dict[str, float]
    parts_share: dict[str, float]
    top_operators: list[TopOperator]

    def as_dict(self) -> dict[str, Any]:
        return {"step_ms": self.step_ms, "parts_ms": self.parts_ms, "parts_share": self.parts_share,
                "top_operators": [op.as_dict() for op in self.top_operators]}


@dataclass
class ProfileResult:
    model: str
    steps: int
    reference: ProfiledPath
    optimised: ProfiledPath

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "steps": self.steps, "reference": self.reference.as_dict(),
                "optimised": self.optimised.as_dict()}

    def format(self) -> list[str]:
        lines = []
        for name, run in (("reference", self.reference), ("optimised", self.optimised)):
            lines.append("")
            lines.append(f"profile {self.model} cached step, {name}: {run.step_ms:.1f} ms")
            for part, ms in run.parts_ms.items():
                lines.append(f"  {part:30} {ms:8.2f} ms  {100 * run.parts_share[part]:5.1f} %")
            top = ", ".join(f"{op.operator} {op.self_cpu_ms:.1f}" for op in run.top_operators[:5])
            lines.append(f"  top operators (self CPU ms): {top}")
        return lines


def stage_of_blocks(model: RT1) -> list[int]:
    stages = []
    for index, stage in enumerate(model.config.backbone.stages):
        stages += [index + 1] * stage.repeats
    return stages


def profile_step(config: BenchConfig, device: torch.device) -> ProfileResult:
    """Forward hooks time each part of a cached control step (the encoder on one frame + the transformer over the
    window), on the eager reference and on the optimised path."""
    size = config.profile.model_size
    model = untrained_model(size)
    frame = images_to_tensor(resize_for_model(camera_frames(1, model.config.image_size)[0],
                                              model.config.frame_size)).unsqueeze(0).to(device)
    window = torch.randn(1, model.config.num_frames, model.config.tokens_per_frame, model.config.embed_dim,
                         device=device)
    runs: dict[str, ProfiledPath] = {}
    # The torch path's optimisations: forward hooks time torch modules, which the ONNX backends do not run.
    for name, options in (("reference", REFERENCE), ("optimised", InferenceOptions(backend="torch"))):
        path = build_path(model, options, device)
        conditioning = path.model.embed_instruction(instruction_embedding()[None].to(device)).detach()
        totals: dict[str, float] = defaultdict(float)
        handles = []
        for group, module in _hook_groups(path.model):
            handles += _attach_timer(module, group, totals)
        step_ms = []
        with torch.inference_mode():
            path.encode_frame(frame, conditioning)  # warm-up
            path.logits(window)
            totals.clear()
            for _ in range(config.profile.steps):
                started = time.perf_counter()
                path.encode_frame(frame, conditioning)
                path.logits(window)
                synchronise()
                step_ms.append((time.perf_counter() - started) * 1000.0)
        for handle in handles:
            handle.remove()
        steps = config.profile.steps
        total = float(np.sum(step_ms)) / steps
        parts = {group: ms / steps for group, ms in totals.items()}
        parts["other (normalisation, glue)"] = max(0.0, total - sum(parts.values()))
        runs[name] = ProfiledPath(
            step_ms=round(total, 2),
            parts_ms={k: round(v, 2) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
            parts_share={k: round(v / total, 3) for k, v in parts.items()},
            top_operators=_top_operators(path, frame, conditioning, window))
    return ProfileResult(model=size, steps=config.profile.steps, reference=runs["reference"],
                         optimised=runs["optimised"])


def _hook_groups(model: RT1) -> list[tuple[str, nn.Module]]:
    encoder = model.image_encoder
    groups: list[tuple[str, nn.Module]] = [("stem", encoder.stem)]
    for block, film, stage in zip(encoder.blocks, encoder.films, stage_of_blocks(model)):
        groups.append((f"mbconv stage {stage}", block))
        groups.append(("film (all blocks)", film))
    groups += [("pool + token projection", encoder.pool), ("pool + token projection", encoder.token_projection),
               ("token learner", model.token_learner), ("transformer", model.transformer),
               ("action heads", model.action_head)]
    return groups


def _attach_timer(module: nn.Module, group: str, totals: dict[str, float]) -> list:
    started: list[float] = []

    def before(*_) -> None:
        synchronise()
        started.append(time.perf_counter())

    def after(*_) -> None:
        synchronise()
        totals[group] += (time.perf_counter() - started.pop()) * 1000.0

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


def _top_operators(path, frame, conditioning, window, count: int = 8) -> list[TopOperator]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch.inference_mode(), profile(activities=activities) as profiler:
        path.encode_frame(frame, conditioning)
        path.logits(window)
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:count]
    return [TopOperator(operator=e.key, calls=e.count, self_cpu_ms=round(e.self_cpu_time_total / 1000.0, 2))
            for e in events]
