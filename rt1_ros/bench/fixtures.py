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


def simulator_frames(count: int, family: str = "pick", seed: int = 100_000) -> np.ndarray:
    """(count,H,W,3) uint8: the head camera over the first ``count`` steps of the scripted expert's episode
    (family, seed); seeds from 100000 on were never used for training. Frames a trained checkpoint reacts to."""
    from rt1_ros.configuration.action_layout import ActionSpaceConfig
    from rt1_ros.sim.episode import run_episode
    from rt1_ros.sim.experts import ScriptedExpert
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    sim = MobileManipulatorSim()
    task = sim.reset(family, seed)
    action_space = ActionSpaceConfig.from_yaml()
    expert = ScriptedExpert(sim, action_space)
    expert.reset(task)
    episode = run_episode(sim, task, expert.act, action_space, max_steps=count, record_images=True)
    frames = list(episode.images)
    while len(frames) < count:  # the expert finished early: hold its last view
        frames.append(frames[-1])
    return np.stack(frames[:count])
