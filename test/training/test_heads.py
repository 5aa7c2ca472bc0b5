"""The training-only heads' own losses (rt1_ros.training.heads)."""
from __future__ import annotations

import torch

from rt1_ros.training.heads import TargetCellHead


def test_target_cell_head_scores_the_cell_that_shows_the_object():
    """The target is the object's cell on the g×g grid (row-major, v down, u right): a map peaked there scores a low
    loss and full accuracy, a map peaked elsewhere a high one; rows with the object out of view teach nothing."""
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
