"""rt1_ros.bench.control_steps: the full-recompute timing path (RT1.encode_frames + logits_from_frame_tokens over
the padded window) gives the cached step's tokens, on the eager reference and on the optimised path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.control_steps import cached_steps, full_recompute_steps, make_policy
from rt1_ros.bench.fixtures import camera_frames, untrained_model
from rt1_ros.inference.options import InferenceOptions


@pytest.mark.parametrize("options", [None, InferenceOptions()], ids=["reference", "optimised"])
def test_full_recompute_gives_the_cached_steps_tokens(options):
    config = BenchConfig(models=("tiny",), warmup_steps=0, steps=7)  # 7 > the 6-frame window
    policy = make_policy(untrained_model("tiny"), options, torch.device("cpu"))
    frames = camera_frames(config.steps, 120)
    cached, cached_tokens = cached_steps(policy, frames, config)
    full, full_tokens = full_recompute_steps(policy, frames, config)
    assert len(cached_tokens) == len(full_tokens) == config.steps
    for step, (a, b) in enumerate(zip(cached_tokens, full_tokens)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
    assert len(cached.wall_ms) == len(full.wall_ms) == config.steps
