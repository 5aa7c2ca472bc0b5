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


def test_target_cell_head_scores_the_cell_that_shows_the_object():
    """The target is the object's cell on the g×g grid (row-major, v down, u right): a map peaked there scores a low
    loss and full accuracy, a map peaked elsewhere a high one; rows with the object out of view teach nothing."""
    from rt1_ros.policy.loss import TargetCellHead

    head = TargetCellHead(dim=4, image_columns=(1, 2))
    grid = 4
    # Object centres at u=0.9 (column 3), v=0.1 (row 0) -> cell 3; and u=0.1, v=0.6 -> row 2, column 0 -> cell 8.
    state = torch.tensor([[0.0, 0.9, 0.1], [0.0, 0.1, 0.6], [0.0, 1.3, 0.5], [float("nan"), float("nan"), 0.2]])
    right = torch.full((4, grid * grid), -8.0)
    right[0, 3] = right[1, 8] = 8.0
    wrong = torch.full((4, grid * grid), -8.0)
    wrong[0, 12] = wrong[1, 15] = 8.0
    right_loss, right_accuracy = head.loss(right, state)
    wrong_loss, wrong_accuracy = head.loss(wrong, state)
    assert right_accuracy.item() == 1.0 and wrong_accuracy.item() == 0.0
    assert right_loss.item() < wrong_loss.item() - 5.0
    # The out-of-view rows (u=1.3; NaN) are ignored: changing their logits changes nothing.
    scrambled = right.clone()
    scrambled[2:] = torch.randn(2, grid * grid) * 10
    torch.testing.assert_close(head.loss(scrambled, state)[0], right_loss)
    # Nothing in view: zero loss that still backpropagates.
    logits = torch.zeros(1, grid * grid, requires_grad=True)
    empty_loss, _ = head.loss(logits, state[2:3])
    empty_loss.backward()
    assert empty_loss.item() == 0.0 and logits.grad is not None
