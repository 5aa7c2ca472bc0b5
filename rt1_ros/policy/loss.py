"""What RT1Policy.forward optimises: cross-entropy per action dimension (256 bins; the mode dimension over its 3
valid classes only) averaged over the 11 dimensions, optionally with Gaussian bin targets, plus the optional
training-only scene-state head's regression."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rt1_ros.model.action_tokenizer import CONTINUOUS_DIMS, MODE_DIM


@dataclass(frozen=True)
class LossConfig:
    """How the action loss is shaped in training (rt1-train's keys of the same names, config/train.yaml). The
    default is plain cross-entropy: validation losses are always reported with it, so runs stay comparable."""

    label_smoothing: float = 0.0
    target_sigma_bins: float = 0.0
    auxiliary_state_weight: float = 0.0


class SceneStateHead(nn.Module):
    """Training-only regression of the privileged scene state (sim target and gripper positions) from the action
    feature. Why: behaviour cloning alone gives the encoder a weak, indirect signal about *where* the named object
    is; regressing its position (and the gripper's) teaches localisation and grounding directly. Targets are
    standardised with the training set's per-column mean and std, kept here as buffers."""

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


def gaussian_bin_targets(targets: torch.Tensor, num_bins: int, sigma_bins: float) -> torch.Tensor:
    """targets (M,) bin indices -> (M,bins) a discretised Gaussian centred on each, summing to 1."""
    bins = torch.arange(num_bins, device=targets.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((bins[None, :] - targets[:, None].float()) / sigma_bins) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def action_loss(logits: torch.Tensor, targets: torch.Tensor, num_modes: int, label_smoothing: float = 0.0,
                target_sigma_bins: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N,11,bins), targets (N,11) -> (mean over dims of the per-dim cross-entropy, per-dim losses (11,)).

    ``target_sigma_bins`` > 0 replaces each continuous dimension's one-hot target by a discretised Gaussian of that
    width (in bins). Why: the bins are ordered (0.4 mm apart for the arm), but a one-hot cross-entropy scores a
    prediction one bin off exactly as wrong as one a hundred bins off, so a few thousand demonstrations give almost
    no signal about *which way* an action is wrong. Decoding is unchanged (argmax)."""
    logits = logits.float()
    continuous_logits = logits[:, :CONTINUOUS_DIMS].flatten(0, 1)  # (N·10,bins)
    continuous_targets = targets[:, :CONTINUOUS_DIMS].flatten()  # (N·10,)
    if target_sigma_bins > 0.0:
        soft = gaussian_bin_targets(continuous_targets, continuous_logits.shape[-1], target_sigma_bins)
        continuous = F.cross_entropy(continuous_logits, soft, reduction="none", label_smoothing=label_smoothing)
    else:
        continuous = F.cross_entropy(continuous_logits, continuous_targets, reduction="none",
                                     label_smoothing=label_smoothing)
    continuous = continuous.view(-1, CONTINUOUS_DIMS).mean(dim=0)  # (10,)
    mode = F.cross_entropy(logits[:, MODE_DIM, :num_modes], targets[:, MODE_DIM], label_smoothing=label_smoothing)
    per_dim = torch.cat([continuous, mode.unsqueeze(0)])  # (11,)
    return per_dim.mean(), per_dim
