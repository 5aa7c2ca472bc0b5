"""The lucidrains section: `robotic-transformer-pytorch` (MaxViT RT-1, its README configuration) at the same batch
and frames as our cached and full-recompute steps, when importable; skipped with the reason otherwise."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import torch

from rt1_ros.configuration.action_layout import NUM_ACTION_DIMS
from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.control_steps import cached_steps, full_recompute_steps, make_policy
from rt1_ros.bench.fixtures import camera_frames
from rt1_ros.bench.measurement import PeakMemory, Skipped, Timings, ratio, time_calls
from rt1_ros.model.rt1 import RT1, RT1Config, count_parameters
from rt1_ros.inference.options import InferenceOptions

LABEL = "lucidrains robotic-transformer-pytorch"


@dataclass
class LucidrainsResult:
    package: str
    frames: int
    image_size: int
    their_parameters_m_without_text_conditioner: float
    their_step: Timings
    their_memory: PeakMemory
    ours_cached_optimised: Timings
    ours_full_recompute_optimised: Timings

    @property
    def their_step_over_our_cached_step(self) -> float | None:
        return ratio(self.their_step.wall_ms, self.ours_cached_optimised.wall_ms)

    @property
    def their_step_over_our_full_recompute(self) -> float | None:
        return ratio(self.their_step.wall_ms, self.ours_full_recompute_optimised.wall_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"package": self.package, "configuration": "README MaxViT",
                "batch": 1, "frames": self.frames, "image_size": self.image_size,
                "their_parameters_m_without_text_conditioner": self.their_parameters_m_without_text_conditioner,
                "their_step": self.their_step.as_dict(), "their_memory": self.their_memory.as_dict(),
                "ours_cached_optimised": self.ours_cached_optimised.as_dict(),
                "ours_full_recompute_optimised": self.ours_full_recompute_optimised.as_dict(),
                "their_step_over_our_cached_step": self.their_step_over_our_cached_step,
                "their_step_over_our_full_recompute": self.their_step_over_our_full_recompute}

    def format(self) -> list[str]:
        return [f"{LABEL} {self.package} (MaxViT, {self.frames} frames @ {self.image_size} px): step "
                f"{self.their_step.wall['median']:.0f} ms vs ours cached "
                f"{self.ours_cached_optimised.wall['median']:.0f} ms ({self.their_step_over_our_cached_step}x) / "
                f"full {self.ours_full_recompute_optimised.wall['median']:.0f} ms "
                f"({self.their_step_over_our_full_recompute}x)"]


def skipped(reason: str) -> Skipped:
    return Skipped(reason, LABEL + ": {reason}")


def import_lucidrains():
    """(MaxViT, RT1) of robotic-transformer-pytorch, or the reason it cannot be used here.

    Its text conditioner builds a T5 encoder from the Hugging Face hub on construction and its package imports
    open_clip at import time; neither is used when text embeddings are passed in (which is how we time it, as
    our own step excludes the sentence encoder too), so a missing open_clip is replaced by an empty module and
    T5's weights are never loaded: only its configuration (d_model 768) is registered.
    """
    import importlib.util
    import types

    if importlib.util.find_spec("robotic_transformer_pytorch") is None:
        return None, ("not installed (pip install robotic-transformer-pytorch pulls torch 2.15 and CUDA wheels; "
                      "README 'Performance' shows a --no-deps install beside this environment)")
    try:
        if importlib.util.find_spec("open_clip") is None:
            sys.modules.setdefault("open_clip", types.ModuleType("open_clip"))
        from classifier_free_guidance_pytorch import t5
        from transformers import T5Config

        t5.T5_CONFIGS.setdefault(t5.DEFAULT_T5_NAME, {"model": None, "tokenizer": None,
                                                      "config": T5Config(d_model=768)})
        from robotic_transformer_pytorch import RT1 as LucidRT1
        from robotic_transformer_pytorch import MaxViT
    except Exception as exc:  # any import-time failure of a third-party package is reported, not raised
        return None, f"installed but not importable: {type(exc).__name__}: {exc}"
    return (MaxViT, LucidRT1), ""


def bench_lucidrains(config: BenchConfig, device: torch.device) -> LucidrainsResult | Skipped:
    if not config.lucidrains.enabled:
        return skipped("disabled in this configuration")
    classes, reason = import_lucidrains()
    if classes is None:
        return skipped(reason)
    max_vit, lucid_rt1 = classes
    settings, size = config.lucidrains, config.lucidrains.image_size
    torch.manual_seed(0)
    # Its README's configuration.
    vit = max_vit(num_classes=1000, dim_conv_stem=64, dim=96, dim_head=32, depth=(2, 2, 5, 2), window_size=7,
                  mbconv_expansion_rate=4, mbconv_shrinkage_rate=0.25, dropout=0.1)
    theirs = lucid_rt1(vit=vit, num_actions=NUM_ACTION_DIMS, depth=6, heads=8, dim_head=64,
                       cond_drop_prob=0.2).to(device).eval()
    frames = 6
    video = torch.rand(1, 3, frames, size, size, device=device)
    text_embeds = torch.randn(1, 768, device=device)
    their_parameters = count_parameters(theirs) - count_parameters(theirs.conditioner)

    @torch.inference_mode()
    def their_step(_: int) -> None:
        theirs(video, text_embeds=text_embeds)

    with PeakMemory() as their_memory:
        their_timings = time_calls(their_step, settings.warmup_steps, settings.steps,
                                   config.max_seconds_per_measurement)
    theirs.cpu()

    # Ours at the same resolution and frames: paper architecture, image_size overridden.
    ours_config = dataclasses.replace(RT1Config.from_yaml("paper"), image_size=size)
    torch.manual_seed(0)
    ours_model = RT1(ours_config).eval()
    camera = camera_frames(settings.warmup_steps + settings.steps + 1, size)
    policy = make_policy(ours_model, InferenceOptions(), device)
    run = dataclasses.replace(config, warmup_steps=settings.warmup_steps, steps=settings.steps)
    ours_cached, _ = cached_steps(policy, camera, run)
    ours_full, _ = full_recompute_steps(policy, camera, run)
    return LucidrainsResult(package=_package_version("robotic-transformer-pytorch"), frames=frames, image_size=size,
                            their_parameters_m_without_text_conditioner=round(their_parameters / 1e6, 2),
                            their_step=their_timings, their_memory=their_memory,
                            ours_cached_optimised=ours_cached, ours_full_recompute_optimised=ours_full)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
