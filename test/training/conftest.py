"""Shared by the training tests: a tiny dataset whose actions are readable from the image, and fast overrides."""
from __future__ import annotations

import numpy as np
import pytest

from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter

FAST = ["image_size=32", "segments_per_batch=2", "segment_length=4", "val_fraction=0.25", "warmup_steps=2",
        "time_budget_min=0", "log_every=2", "eval_every=5", "checkpoint_every=5", "learning_rate=0.003",
        "crop_scale_min=0.9"]


def _write_dataset(root, episodes: int = 4, steps: int = 6, size: int = 40, scene_state: bool = False) -> None:
    """Episodes whose actions are readable from the image: the frame's brightness says the x command (and, with
    ``scene_state``, a privileged state column that is the brightness level too)."""
    rng = np.random.default_rng(0)
    writer = EpisodeWriter(root)
    for seed in range(episodes):
        levels = rng.integers(0, 3, size=steps)
        frames = np.zeros((steps, size, size, 3), np.uint8)
        frames[...] = (levels * 100)[:, None, None, None].astype(np.uint8)
        actions = np.zeros((steps, 11), np.float32)
        actions[:, 0] = (levels - 1) * 0.04
        actions[:, 6] = 1.0
        actions[-1, 10] = 2
        state = np.stack([levels, np.full(steps, seed)], axis=1).astype(np.float32) if scene_state else None
        writer.write(frames, actions, EpisodeInfo(instruction="pick up the red cube" if seed % 2 else
                                                  "move near the blue cube", task_family="pick", seed=seed,
                                                  success=True, source="test", fps=3.0), scene_state=state)


@pytest.fixture
def fast() -> list[str]:
    """--set overrides for a run of a few seconds on CPU (32 px, 2 runs of 4 steps, validate/save every 5)."""
    return list(FAST)


@pytest.fixture
def write_dataset():
    return _write_dataset


@pytest.fixture
def dataset(tmp_path):
    _write_dataset(tmp_path / "data")
    return tmp_path / "data"
