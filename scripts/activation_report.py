"""Activation report: how much of the FiLM-EfficientNet's activations depend on the input frame at random init.

Builds RT-1 with ``torch.manual_seed(0)`` in eval mode, feeds 4 different frames (simulator head-camera views, or
smooth noise with ``--frames smooth``) through the image encoder, hooks the stem and every MBConv block, and prints:

1. A per-block table for the current initialisation and the proposed one (``--sizes``, default paper, sim, tiny):
     rms    root-mean-square of the activations (over frames, channels, positions)
     frame  RMS of the deviation from the mean over the 4 frames: the frame-dependent part
     share  frame / rms
   The ``tokens`` row is the encoder's output (pool + 1×1 token projection, with its bias).
2. The per-layer RMS gains inside one non-residual MBConv (BatchNorm in eval mode at init is the identity).
3. Other initialisations tried (encoder output only): train-mode BN, torchvision's and Keras/TF's EfficientNet
   init, zero-init of the last BN gamma in residual blocks, He init with a SiLU gain, He + zero conv biases.
4. The logits' change between two windows of 6 different frames (full RT-1 forward), current vs proposed.

"current": PyTorch defaults (Conv2d kaiming_uniform(a=√5): Var(w) = 1/(3·fan_in); biases U(±1/√fan_in)), i.e. the
model built with ``backbone.he_init: false`` (the `sim` size's setting). "he_init" (proposed by this report, now the
library's ``FiLMEfficientNetConfig.he_init``, on in `paper` and `tiny`): every Conv2d of the image encoder drawn with
kaiming_normal_(mode="fan_in") (Var(w) = 2/fan_in) and its bias (squeeze-excitation convs, token projection) zeroed.
The other variants re-initialise the default-built encoder inside this script.

"tok-bias share" (current init): the block's frame RMS over the token projection bias's RMS, i.e. the frame-dependent
share the encoder output would have if it were read after that block; the bias is the encoder's only constant.

    scripts/rt1-env python scripts/activation_report.py [--sizes paper,sim,tiny] [--frames sim|smooth]

One CPU thread; about 30 s.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from rt1_ros.model.rt1 import RT1, RT1Config, images_to_tensor

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------------ frames
def smooth_frames(count: int, size: int, seed: int = 1) -> torch.Tensor:
    """(count,3,H,W) in [0,1]: bicubically upsampled 16-px noise plus a little pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, size // 16 + 1, size // 16 + 1, generator=generator)
    images = nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (images + 0.05 * torch.rand(count, 3, size, size, generator=generator)).clamp(0, 1)


def simulator_frames(count: int, size: int) -> torch.Tensor:
    """(count,3,H,W) in [0,1]: head-camera views after reset, cycling task families, seed i for frame i."""
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    sim = MobileManipulatorSim()
    frames = []
    for i in range(count):
        sim.reset(("pick", "push", "move_near")[i % 3], i)
        frames.append(sim.render(size, size))
    return images_to_tensor(np.stack(frames))


def frames_for(kind: str, count: int, size: int) -> torch.Tensor:
    if kind == "sim":
        try:
            return simulator_frames(count, size)
        except Exception as exc:  # no GL, no MuJoCo: fall back so the report still runs
            print(f"(simulator frames unavailable: {exc!r}; using smooth noise)")
    return smooth_frames(count, size)


# ----------------------------------------------------------------------------------------------- initialisations
def convs(encoder: nn.Module):
    return [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]


def init_he_fan_in(encoder: nn.Module, gain: float = math.sqrt(2.0)) -> None:
    """Var(w) = gain²/fan_in (fan_in = in_channels/groups · k², so depthwise convs get 1/k²-scaled kernels)."""
    for conv in convs(encoder):
        nn.init.normal_(conv.weight, 0.0, gain / math.sqrt(conv.weight[0].numel()))


def init_proposed(encoder: nn.Module) -> None:
    for conv in convs(encoder):
        nn.init.kaiming_normal_(conv.weight, mode="fan_in")


def zero_conv_biases(encoder: nn.Module) -> None:
    for conv in convs(encoder):
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


def init_torchvision(encoder: nn.Module) -> None:
    """torchvision EfficientNet: kaiming_normal_(mode="fan_out") (torch's fan_out ignores groups), biases 0."""
    for conv in convs(encoder):
        nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    zero_conv_biases(encoder)


def init_keras(encoder: nn.Module) -> None:
    """TF/Keras EfficientNet: normal(0, √(2/fan_out)), fan_out = k²·out/groups (depthwise: k²), biases 0."""
    for conv in convs(encoder):
        fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
        nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
    zero_conv_biases(encoder)


def bn_modules(encoder: nn.Module):
    return [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]


def bn_train_mode(encoder: nn.Module) -> None:
    """Batch statistics (only the BatchNorms: drop-path stays off)."""
    for bn in bn_modules(encoder):
        bn.train()


def zero_residual_gamma(encoder: nn.Module) -> None:
    for block in encoder.blocks:
        if block.use_residual:
            nn.init.zeros_(block.project_bn.weight)


PROPOSED = "he_init: He + zero bias"
SILU_GAIN = 1.0 / math.sqrt(0.3560)  # 1/√E[silu(z)²], z ~ N(0,1)

VARIANTS = {  # name -> (re-initialisation, BN in train mode)
    "current": (None, False),
    "current, BN batch statistics": (None, True),
    "current, BN stats calibrated": ("calibrate", False),
    "torchvision EfficientNet": (init_torchvision, False),
    "Keras/TF EfficientNet": (init_keras, False),
    "Keras + zero last-BN gamma": (lambda e: (init_keras(e), zero_residual_gamma(e)), False),
    "He, SiLU gain 1.68": (lambda e: init_he_fan_in(e, SILU_GAIN), False),
    "He fan_in, weights only": (init_proposed, False),
    PROPOSED: ("library", False),  # FiLMEfficientNetConfig.he_init, as built by the library
}


def build(size: str, variant: str, images: torch.Tensor | None = None) -> RT1:
    init, train_bn = VARIANTS[variant]
    config = RT1Config.from_yaml(size)
    config = replace(config, backbone=replace(config.backbone, he_init=init == "library"))
    torch.manual_seed(0)
    model = RT1(config).eval()
    with torch.no_grad():
        if init == "library":
            pass
        elif init == "calibrate":  # running stats := these frames' batch statistics (one pass), then eval mode
            encoder = model.image_encoder
            for bn in bn_modules(encoder):
                bn.reset_running_stats()
                bn.momentum = None
            bn_train_mode(encoder)
            encoder(images, torch.zeros(len(images), model.config.embed_dim))
            encoder.eval()
        elif init is not None:
            init(model.image_encoder)
    if train_bn:
        bn_train_mode(model.image_encoder)
    return model


# ---------------------------------------------------------------------------------------------------- measuring
def rms(t: torch.Tensor) -> float:
    return t.double().pow(2).mean().sqrt().item()


def stats(t: torch.Tensor) -> tuple[float, float, float]:
    total, frame = rms(t), rms(t - t.mean(0, keepdim=True))
    return total, frame, frame / total if total else float("nan")


@torch.no_grad()
def encoder_activations(model: RT1, images: torch.Tensor) -> list[tuple[str, str, torch.Tensor]]:
    """[(name, description, activation)] for the stem, each MBConv block (+FiLM) and the output tokens."""
    encoder = model.image_encoder
    captured = []
    hooks = [encoder.stem.register_forward_hook(lambda m, i, o: captured.append(o))]
    hooks += [film.register_forward_hook(lambda m, i, o: captured.append(o)) for film in encoder.films]
    conditioning = model.embed_instruction(torch.randn(1, model.config.text_embedding_dim,
                                                       generator=torch.Generator().manual_seed(0)))
    tokens = encoder(images, conditioning.expand(len(images), -1))
    for hook in hooks:
        hook.remove()
    rows = [("stem", "", captured[0])]
    for index, (block, act) in enumerate(zip(encoder.blocks, captured[1:])):
        kind = "res" if block.use_residual else "NEW"
        rows.append((f"block {index}", f"{kind} {tuple(act.shape[1:])}", act))
    rows.append(("tokens", f"{tuple(tokens.shape[1:])}", tokens))
    return rows


def per_block_table(size: str, images: torch.Tensor) -> None:
    model = build(size, "current")
    bias = rms(model.image_encoder.token_projection.bias.detach())
    current = encoder_activations(model, images)
    proposed = encoder_activations(build(size, PROPOSED), images)
    print(f"\n== {size}: per block, eval mode, {len(images)} frames (NEW = no residual: stride or width change);"
          f" token projection bias rms {bias:.3g}")
    print(f"{'':9} {'':19} | {'current: rms':>12} {'frame':>9} {'share':>6} {'tok-bias share':>14} |"
          f" {'proposed: rms':>13} {'frame':>9} {'share':>6}")
    for (name, what, a), (_, _, b) in zip(current, proposed):
        ca, cb = stats(a), stats(b)
        print(f"{name:9} {what:19} | {ca[0]:12.2e} {ca[1]:9.2e} {ca[2]:6.3f} {ca[1] / bias:14.2e} |"
              f" {cb[0]:13.2e} {cb[1]:9.2e} {cb[2]:6.3f}")


@torch.no_grad()
def block_gains(model: RT1, index: int, images: torch.Tensor) -> list[tuple[str, float]]:
    """[(layer, RMS out/in)] through block ``index``, SiLUs included (measured on the BN outputs they act on)."""
    block = model.image_encoder.blocks[index]
    gains: dict[str, float] = {}
    silu: list[float] = []

    def log(name):
        return lambda module, inputs, output: gains.__setitem__(name, rms(output) / rms(inputs[0]))

    def log_silu(module, inputs, output):
        silu.append(rms(nn.functional.silu(output)) / rms(output))

    names = ("expand_conv", "expand_bn", "depthwise_conv", "depthwise_bn", "se", "project_conv", "project_bn")
    hooks = [getattr(block, name).register_forward_hook(log(name)) for name in names]
    hooks += [block.expand_bn.register_forward_hook(log_silu), block.depthwise_bn.register_forward_hook(log_silu)]
    model.image_encoder(images, torch.zeros(len(images), model.config.embed_dim))
    for hook in hooks:
        hook.remove()
    return [("expand", gains["expand_conv"]), ("bn", gains["expand_bn"]), ("silu", silu[0]),
            ("dw", gains["depthwise_conv"]), ("bn", gains["depthwise_bn"]), ("silu", silu[1]),
            ("se", gains["se"]), ("project", gains["project_conv"]), ("bn", gains["project_bn"])]


def layer_gains(size: str, images: torch.Tensor) -> None:
    """RMS out/in of each layer of the first non-residual MBConv with expansion."""
    print(f"\n== {size}: RMS gain (out/in) of each layer of one non-residual MBConv, eval mode")
    for variant in ("current", PROPOSED):
        model = build(size, variant)
        index = next(i for i, b in enumerate(model.image_encoder.blocks) if b.has_expansion and not b.use_residual)
        order = block_gains(model, index, images)
        product = math.prod(g for _, g in order)
        print(f"  {variant:23} block {index}: " + "  ".join(f"{n} {g:.3f}" for n, g in order)
              + f"  => ×{product:.4f} (1/{1 / product:.1f})")


def variants_table(size: str, images: torch.Tensor) -> None:
    print(f"\n== {size}: other initialisations, last MBConv block and encoder tokens")
    print(f"  {'initialisation':30} {'block rms':>10} {'share':>6} {'tokens rms':>11} {'share':>6}")
    for variant in VARIANTS:
        rows = encoder_activations(build(size, variant, images), images)
        last, tokens = stats(rows[-2][2]), stats(rows[-1][2])
        print(f"  {variant:30} {last[0]:10.2e} {last[2]:6.3f} {tokens[0]:11.2e} {tokens[2]:6.3f}")


@torch.no_grad()
def logits_change(size: str, frames: torch.Tensor) -> None:
    print(f"\n== {size}: logits for two windows of {frames.shape[0] // 2} different frames (eval, same instruction)")
    text = torch.randn(1, 384, generator=torch.Generator().manual_seed(0))
    half = frames.shape[0] // 2
    windows = torch.stack([frames[:half], frames[half:]])  # (2,T,3,H,W)
    for variant in ("current", PROPOSED):
        logits = build(size, variant)(windows, text.expand(2, -1))  # (2,11,bins)
        delta = (logits[0] - logits[1]).abs()
        changed = (logits[0].argmax(-1) != logits[1].argmax(-1)).sum().item()
        print(f"  {variant:23} logits rms {rms(logits):.3f}  max|Δ| {delta.max().item():.2e}"
              f"  rms Δ / rms {rms(logits[0] - logits[1]) / rms(logits):.2e}  argmax bins changed {changed}/11")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="paper,sim,tiny")
    parser.add_argument("--frames", choices=("sim", "smooth"), default="sim")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    for size in sizes:
        image_size = RT1Config.from_yaml(size).image_size
        num_frames = RT1Config.from_yaml(size).num_frames
        frames = frames_for(args.frames, 2 * num_frames, image_size)
        images = frames[:: 2 * num_frames // 4][:4]  # 4 different frames
        per_block_table(size, images)
        if size == sizes[0]:
            layer_gains(size, images)
        variants_table(size, images)
        logits_change(size, frames)


if __name__ == "__main__":
    main()
