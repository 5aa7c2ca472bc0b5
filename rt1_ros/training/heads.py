"""The training-only heads: they shape what the encoder learns and are never part of the policy the node loads
(rt1_ros.training.objective adds their losses; the trainer checkpoints them beside the policy)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SceneStateHead(nn.Module):
    """Training-only regression of the privileged scene state (sim target and gripper positions) from the state
    feature (the transformer's output at the newest frame's last image token, ActionReadout.training_readout). Why:
    behaviour cloning alone gives the encoder a weak, indirect signal about *where* the named object is; regressing
    its position (and the gripper's) teaches localisation and grounding directly. Targets are standardised with the
    training set's per-column mean and std, kept here as buffers."""

    def __init__(self, dim: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.projection = nn.Linear(dim, len(mean))
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)

    def loss(self, prediction: torch.Tensor, scene_state: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the rows that have a state (NaN rows are episodes without one)."""
        known = ~torch.isnan(scene_state).any(dim=1)
        if not bool(known.any()):
            return prediction.sum() * 0.0
        target = (scene_state[known] - self.mean) / self.std
        return F.mse_loss(prediction[known].float(), target)


class TargetCellHead(nn.Module):
    """Training-only: which cell of the backbone's g×g token grid holds the instruction's object, read from the
    FiLM-conditioned spatial tokens of the current frame (a 1×1 projection to one logit per cell, softmax over the
    grid). Why: the shipped model's failures are grounding failures (it closes beside the target, pushes another
    object), and a regressed position (SceneStateHead) reaches the image encoder only through the TokenLearner and
    the transformer; a per-cell target says *which tokens* show the named object, the signal FiLM exists for. The
    target is a discretised Gaussian (``sigma_cells``) around the object's centre, which the training crop is not
    applied to: with config/recipe_sim.yaml's crops (≥ 95 % of the side) that moves it by under half a cell;
    config/train.yaml's ≥ 88 % can move it by about one."""

    def __init__(self, dim: int, image_columns: tuple[int, int], sigma_cells: float = 0.75) -> None:
        super().__init__()
        self.projection = nn.Linear(dim, 1)
        self.image_columns = image_columns  # scene_state columns of the target's image position (u right, v down)
        self.sigma_cells = sigma_cells

    def forward(self, spatial_tokens: torch.Tensor) -> torch.Tensor:
        return self.projection(spatial_tokens).squeeze(-1)  # (M,g²,D) -> (M,g²) logits

    def object_cells(self, scene_state: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """scene_state (M,S) -> (in view (M,) bool, the row-major index of the cell holding the object's centre for
        the rows in view (m,)), the cell the head should pick."""
        position = scene_state[:, list(self.image_columns)]  # (M,2) fractions of width and height
        known = ~torch.isnan(position).any(dim=1) & (position >= 0).all(dim=1) & (position < 1).all(dim=1)
        column_row = (position[known].float() * grid).floor().clamp(0, grid - 1).long()  # (m,2)
        return known, column_row[:, 1] * grid + column_row[:, 0]

    def target_distribution(self, scene_state: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """scene_state (M,S) -> (in view (M,) bool, (m,g²) the discretised Gaussian around each in-view object's
        centre, row-major like the tokens, each row summing to 1): what the head is taught to predict."""
        known, _ = self.object_cells(scene_state, grid)
        # (m,2) in cell units, cell centres at integers
        centre = scene_state[known][:, list(self.image_columns)].float() * grid - 0.5
        cells = torch.arange(grid, device=scene_state.device, dtype=torch.float32)
        column_weight = torch.exp(-0.5 * ((cells[None, :] - centre[:, :1]) / self.sigma_cells) ** 2)  # (m,g)
        row_weight = torch.exp(-0.5 * ((cells[None, :] - centre[:, 1:]) / self.sigma_cells) ** 2)  # (m,g)
        target = (row_weight[:, :, None] * column_weight[:, None, :]).flatten(1)  # (m,g²)
        return known, target / target.sum(dim=1, keepdim=True)

    def loss(self, logits: torch.Tensor, scene_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """logits (M,g²), scene_state (M,S) -> (soft cross-entropy, argmax-cell accuracy) over the rows whose
        target is in view (an unknown state or an object outside the image teaches nothing). With no such row: a
        zero loss that keeps the head in the graph, and accuracy None (nothing was measured)."""
        grid = round(logits.shape[1] ** 0.5)
        known, true_cell = self.object_cells(scene_state, grid)
        if not bool(known.any()):
            return logits.sum() * 0.0, None
        _, target = self.target_distribution(scene_state, grid)
        known_logits = logits[known].float()
        loss = F.cross_entropy(known_logits, target)
        accuracy = (known_logits.argmax(dim=1) == true_cell).float().mean()
        return loss, accuracy.detach()
