"""What the sections measure on: untrained models that still exercise every fast path, and camera-like frames."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rt1_ros.model.rt1 import RT1, RT1Config

INSTRUCTION = "pick up the red cube"


def untrained_model(size: str, seed: int = 0) -> RT1:
    """A freshly initialised RT-1 with BatchNorm statistics and FiLM set away from their identity initialisation,
    so folding and conditioning are exercised as they would be on a trained checkpoint."""
    torch.manual_seed(seed)
    model = RT1(RT1Config.from_yaml(size)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.1, 0.1, generator=generator)
        for film in model.image_encoder.films:
            film.projection.weight.normal_(0.0, 0.01, generator=generator)
    return model


def camera_frames(count: int, size: int, seed: int = 0) -> np.ndarray:
    """(count,H,W,3) uint8: a smooth scene that drifts between frames plus sensor noise (not pure noise, whose
    tokens sit on a knife edge between bins)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = []
    for i in range(count):
        phase = 0.3 * i
        scene = np.stack([np.sin(6 * xs + phase), np.cos(5 * ys - phase), np.sin(4 * (xs + ys) + 2 * phase)], -1)
        noisy = 127.5 * (1 + scene) + rng.normal(0, 8, scene.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(frames)


def instruction_embedding(seed: int = 0) -> torch.Tensor:
    return torch.randn(384, generator=torch.Generator().manual_seed(seed))
