"""What RT1Policy.forward optimises: cross-entropy per action dimension (256 bins; the mode dimension over its 3
valid classes only, or over all bins in the released layout) averaged over the 11 dimensions, optionally with
Gaussian bin targets. The training-only heads' losses are the trainer's (rt1_ros.training.objective)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rt1_ros.model.action_tokenizer import CONTINUOUS_DIMS, MODE_DIM


@dataclass(frozen=True)
class LossConfig:
    """How the action loss is shaped in training (rt1-train's keys of the same names, config/train.yaml). The
    default is plain cross-entropy: validation losses are always reported with it, so runs stay comparable."""

    label_smoothing: float = 0.0
    target_sigma_bins: float = 0.0


def gaussian_bin_targets(targets: torch.Tensor, num_bins: int, sigma_bins: float) -> torch.Tensor:
    """targets (M,) bin indices -> (M,bins) a discretised Gaussian centred on each, summing to 1."""
    bins = torch.arange(num_bins, device=targets.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((bins[None, :] - targets[:, None].float()) / sigma_bins) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def action_loss(logits: torch.Tensor, targets: torch.Tensor, num_modes: int, label_smoothing: float = 0.0,
                target_sigma_bins: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N,11,bins), targets (N,11) -> (mean over dims of the per-dim cross-entropy, per-dim losses (11,)).
    The mode row is a classifier over its first ``num_modes`` bins (the released layout passes all of them).

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
