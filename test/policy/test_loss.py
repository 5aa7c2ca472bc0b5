"""The action loss: over the valid mode classes only; Gaussian targets rank a near miss below a far one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rt1_ros.policy.loss import action_loss, gaussian_bin_targets


def test_loss_uses_only_the_valid_mode_classes():
    logits = torch.zeros(2, 11, 256)
    targets = torch.zeros(2, 11, dtype=torch.long)
    logits[:, 10, 3:] = 100.0  # invalid mode bins: must not matter
    loss, per_dim = action_loss(logits, targets, num_modes=3)
    assert per_dim[10].item() == pytest.approx(np.log(3), abs=1e-5)
    assert per_dim[0].item() == pytest.approx(np.log(256), abs=1e-4)
    assert loss.item() == pytest.approx(per_dim.mean().item())


def test_gaussian_targets_make_a_near_miss_cheaper_than_a_far_one():
    soft = gaussian_bin_targets(torch.tensor([0, 100, 255]), 256, sigma_bins=4.0)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(3))
    assert soft.argmax(dim=1).tolist() == [0, 100, 255]

    targets = torch.full((1, 11), 128, dtype=torch.long)
    targets[0, 10] = 0

    def loss_when_predicting(bin_index: int, sigma: float) -> float:
        logits = torch.full((1, 11, 256), -10.0)
        logits[0, :, bin_index] = 10.0
        logits[0, 10, 0] = 10.0
        return action_loss(logits, targets, num_modes=3, target_sigma_bins=sigma)[0].item()

    # One-hot: one bin off is as wrong as sixty. Gaussian: the loss knows which is closer.
    assert abs(loss_when_predicting(130, 0.0) - loss_when_predicting(190, 0.0)) < 1e-3
    assert loss_when_predicting(130, 4.0) < loss_when_predicting(190, 4.0) - 1.0
