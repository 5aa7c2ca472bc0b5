"""WindowSampler: training windows are built exactly as the node builds them at inference."""
from __future__ import annotations

import numpy as np

from rt1_ros.runtime.frame_history import pad_window_indices
from rt1_ros.training.config import TrainConfig
from rt1_ros.training.sampler import EpisodeArrays, WindowSampler


def test_windows_are_front_padded_like_inference():
    config = TrainConfig(segment_length=4, segments_per_batch=2, crop_scale_min=1.0)
    frames = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((7, 8, 8, 3), np.uint8)
    episode = EpisodeArrays(frames=frames, tokens=np.zeros((7, 11), np.int64), instruction_index=0, family="f")
    sampler = WindowSampler([episode], num_frames=6, image_size=8, config=config)
    batch = sampler._assemble([(0, 0, 3), (0, 4, 7)], rng=None)
    # Rows 0-2 hold frames 0-2 of the first run; rows 3-9 frames 0-6 (the second run's 5 frames of context + its own).
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    for target, step in zip(range(6), [0, 1, 2, 4, 5, 6]):
        ids = frame_ids[batch.windows[target]].tolist()
        assert ids == pad_window_indices(step, 6), (step, ids)
