"""ActionTokenizer: continuous 11-d actions <-> 256-bin tokens (docs/model.md; RT-1 paper, Brohan et al. 2022).

    encode: bin = round((clip(v, lo, hi) - lo) / (hi - lo) * (num_bins - 1))
    decode: v   = lo + bin / (num_bins - 1) * (hi - lo)

Rounding (not the official truncation) makes bins 0 and 255 hit the bounds exactly and lets every in-range value
round-trip within half a bin. Zero round-trips exactly on a symmetric range only with an odd number of bins; with 256
it decodes half a bin off (the controller snaps that to zero). ``rounding: truncate`` in the action space gives the
released RT-1's ``bin = int((clip(v) - lo) / (hi - lo) * (num_bins - 1))`` instead (data for a converted checkpoint
is tokenized as it was trained); decoding is the same either way. The mode dimension is a class index, not a range: its
head uses only the first ``len(mode_classes)`` logits and decodes by argmax over those alone.
"""
from __future__ import annotations

import numpy as np
import torch

# The layout and the action-space config live in the torch-free rt1_ros.configuration.action_layout; re-exported
# here for the importers that already use this module.
from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, ARM_DIMS, BASE_DIMS, CONTINUOUS_DIMS, GRIPPER_DIM,
                                                 MODE_DIM, NUM_ACTION_DIMS, ActionDimension, ActionSpaceConfig)

__all__ = ["ARM_DELTA_DIMS", "ARM_DIMS", "BASE_DIMS", "CONTINUOUS_DIMS", "GRIPPER_DIM", "MODE_DIM", "NUM_ACTION_DIMS",
           "ActionDimension", "ActionSpaceConfig", "ActionTokenizer", "tokens_from_logits"]


def tokens_from_logits(logits: torch.Tensor, num_modes: int) -> torch.Tensor:
    """(..., 11, num_bins) logits -> (..., 11) tokens: each continuous dimension by argmax over all bins, the mode by
    argmax over its ``num_modes`` valid classes only (the logits above them are no class and never trained).

    The one logits -> tokens rule: the runtime policy, training's accuracy metrics and the inference fast-path check
    all decode through it."""
    tokens = logits[..., :CONTINUOUS_DIMS, :].argmax(dim=-1)
    mode = logits[..., MODE_DIM, :num_modes].argmax(dim=-1, keepdim=True)
    return torch.cat([tokens, mode], dim=-1)


class ActionTokenizer:
    """Vectorised over any leading shape; numpy in -> numpy out, torch in -> torch out."""

    def __init__(self, config: ActionSpaceConfig) -> None:
        self.config = config
        self.num_bins = config.num_bins
        self.num_modes = len(config.mode_classes)
        self._low = config.low
        self._high = config.high
        self._truncate = config.rounding == "truncate"  # frac >= 0 after clipping: int() is floor

    def encode(self, actions):
        """(..., 11) floats (mode as class index) -> (..., 11) integer bins."""
        if isinstance(actions, torch.Tensor):
            low = torch.as_tensor(self._low, dtype=torch.float64, device=actions.device)
            high = torch.as_tensor(self._high, dtype=torch.float64, device=actions.device)
            cont = actions[..., :CONTINUOUS_DIMS].to(torch.float64)
            cont = torch.nan_to_num(cont, nan=0.0)
            frac = (torch.minimum(torch.maximum(cont, low), high) - low) / (high - low)
            scaled = frac * (self.num_bins - 1)
            bins = (torch.floor(scaled) if self._truncate else torch.round(scaled)).to(torch.long)
            mode = torch.clamp(torch.round(torch.nan_to_num(actions[..., MODE_DIM:], nan=0.0)), 0, self.num_modes - 1)
            return torch.cat([bins, mode.to(torch.long)], dim=-1)
        actions = np.asarray(actions, dtype=np.float64)
        self._check_shape(actions.shape)
        cont = np.nan_to_num(actions[..., :CONTINUOUS_DIMS], nan=0.0)
        frac = (np.clip(cont, self._low, self._high) - self._low) / (self._high - self._low)
        scaled = frac * (self.num_bins - 1)
        bins = (np.floor(scaled) if self._truncate else np.rint(scaled)).astype(np.int64)
        mode = np.clip(np.rint(np.nan_to_num(actions[..., MODE_DIM:], nan=0.0)), 0, self.num_modes - 1)
        return np.concatenate([bins, mode.astype(np.int64)], axis=-1)

    def decode(self, tokens):
        """(..., 11) integer bins -> (..., 11) floats; mode stays a class index (out-of-range bins clip)."""
        if isinstance(tokens, torch.Tensor):
            low = torch.as_tensor(self._low, dtype=torch.float64, device=tokens.device)
            high = torch.as_tensor(self._high, dtype=torch.float64, device=tokens.device)
            bins = tokens[..., :CONTINUOUS_DIMS].clamp(0, self.num_bins - 1).to(torch.float64)
            cont = low + bins / (self.num_bins - 1) * (high - low)
            mode = tokens[..., MODE_DIM:].clamp(0, self.num_modes - 1).to(torch.float64)
            return torch.cat([cont, mode], dim=-1)
        tokens = np.asarray(tokens)
        self._check_shape(tokens.shape)
        bins = np.clip(tokens[..., :CONTINUOUS_DIMS], 0, self.num_bins - 1).astype(np.float64)
        cont = self._low + bins / (self.num_bins - 1) * (self._high - self._low)
        mode = np.clip(tokens[..., MODE_DIM:], 0, self.num_modes - 1).astype(np.float64)
        return np.concatenate([cont, mode], axis=-1)

    def tokens_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., 11, num_bins) logits -> (..., 11) tokens; mode by argmax over its valid classes only."""
        return tokens_from_logits(logits, self.num_modes)

    def bin_width(self) -> np.ndarray:
        return (self._high - self._low) / (self.num_bins - 1)

    @staticmethod
    def _check_shape(shape: tuple[int, ...]) -> None:
        if not shape or shape[-1] != NUM_ACTION_DIMS:
            raise ValueError(f"actions/tokens need a last axis of {NUM_ACTION_DIMS}, got shape {shape}")
