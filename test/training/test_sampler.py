"""WindowSampler: training windows are built exactly as the node builds them at inference."""
from __future__ import annotations

import numpy as np

from rt1_ros.inference.frame_history import pad_window_indices
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


def _numbered_episode(steps: int) -> EpisodeArrays:
    """Frame i is filled with the value i, so a window's frame ids can be read back from the images."""
    frames = np.arange(steps, dtype=np.uint8)[:, None, None, None] * np.ones((steps, 8, 8, 3), np.uint8)
    return EpisodeArrays(frames=frames, tokens=np.zeros((steps, 11), np.int64), instruction_index=0, family="f")


def test_history_dropout_shows_some_windows_only_their_current_frame():
    config = TrainConfig(segment_length=4, segments_per_batch=2, crop_scale_min=1.0, brightness=0.0, contrast=0.0,
                         saturation=0.0, history_dropout=0.5)
    sampler = WindowSampler([_numbered_episode(12)], num_frames=6, image_size=8, config=config)
    batch = sampler._assemble([(0, 6, 12)], rng=np.random.default_rng(1))
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    dropped = kept = 0
    for target, step in enumerate(range(6, 12)):
        ids = frame_ids[batch.windows[target]].tolist()
        if ids == [step] * 6:
            dropped += 1
        else:
            assert ids == pad_window_indices(step, 6), (step, ids)
            kept += 1
    assert dropped and kept  # seed 1 draws both outcomes among six windows


def test_history_dropout_never_touches_validation_windows():
    config = TrainConfig(segment_length=4, segments_per_batch=2, history_dropout=1.0)
    sampler = WindowSampler([_numbered_episode(9)], num_frames=6, image_size=8, config=config)
    batch = next(sampler.sequential())
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    for step in range(9):
        assert frame_ids[batch.windows[step]].tolist() == pad_window_indices(step, 6)
