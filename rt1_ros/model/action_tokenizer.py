"""ActionTokenizer: continuous 11-d actions <-> 256-bin tokens (SPEC "Action space and tokenizer").

    encode: bin = round((clip(v, lo, hi) - lo) / (hi - lo) * (num_bins - 1))
    decode: v   = lo + bin / (num_bins - 1) * (hi - lo)

Rounding (not the official truncation) makes bins 0 and 255 hit the bounds exactly and lets every in-range value
round-trip within half a bin; zero round-trips exactly on symmetric ranges. The mode dimension is a class index, not
a range: its head uses only the first ``len(mode_classes)`` logits and decodes by argmax over those alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rt1_ros.yaml_config import config_dir, load_dataclass

ARM_DIMS = slice(0, 7)  # x y z roll pitch yaw gripper
ARM_DELTA_DIMS = slice(0, 6)
GRIPPER_DIM = 6
BASE_DIMS = slice(7, 10)  # x y yaw
MODE_DIM = 10
NUM_ACTION_DIMS = 11
CONTINUOUS_DIMS = 10


@dataclass(frozen=True)
class ActionDimension:
    name: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"action dimension {self.name}: need finite low < high, got [{self.low}, {self.high}]")


@dataclass(frozen=True)
class ActionSpaceConfig:
    dimensions: tuple[ActionDimension, ...]
    num_bins: int = 256
    mode_classes: tuple[str, ...] = ("arm", "base", "terminate")

    def __post_init__(self) -> None:
        if len(self.dimensions) != CONTINUOUS_DIMS:
            raise ValueError(f"expected {CONTINUOUS_DIMS} continuous dimensions, got {len(self.dimensions)}")
        if not 2 <= self.num_bins <= 256:
            raise ValueError("num_bins must be in [2, 256] (tokens travel as uint8)")
        if sorted(self.mode_classes) != ["arm", "base", "terminate"]:
            raise ValueError(f"mode_classes must order exactly arm, base, terminate; got {self.mode_classes}")

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> "ActionSpaceConfig":
        return load_dataclass(cls, path or config_dir() / "action_space.yaml")

    @property
    def low(self) -> np.ndarray:
        return np.array([d.low for d in self.dimensions], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:
        return np.array([d.high for d in self.dimensions], dtype=np.float64)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions) + ("mode",)

    def mode_index(self, mode_name: str) -> int:
        return self.mode_classes.index(mode_name)


class ActionTokenizer:
    """Vectorised over any leading shape; numpy in -> numpy out, torch in -> torch out."""

    def __init__(self, config: ActionSpaceConfig) -> None:
        self.config = config
        self.num_bins = config.num_bins
        self.num_modes = len(config.mode_classes)
        self._low = config.low
        self._high = config.high

    def encode(self, actions):
        """(..., 11) floats (mode as class index) -> (..., 11) integer bins."""
        if isinstance(actions, torch.Tensor):
            low = torch.as_tensor(self._low, dtype=torch.float64, device=actions.device)
            high = torch.as_tensor(self._high, dtype=torch.float64, device=actions.device)
            cont = actions[..., :CONTINUOUS_DIMS].to(torch.float64)
            cont = torch.nan_to_num(cont, nan=0.0)
            frac = (torch.minimum(torch.maximum(cont, low), high) - low) / (high - low)
            bins = torch.round(frac * (self.num_bins - 1)).to(torch.long)
            mode = torch.clamp(torch.round(torch.nan_to_num(actions[..., MODE_DIM:], nan=0.0)), 0, self.num_modes - 1)
            return torch.cat([bins, mode.to(torch.long)], dim=-1)
        actions = np.asarray(actions, dtype=np.float64)
        self._check_shape(actions.shape)
        cont = np.nan_to_num(actions[..., :CONTINUOUS_DIMS], nan=0.0)
        frac = (np.clip(cont, self._low, self._high) - self._low) / (self._high - self._low)
        bins = np.rint(frac * (self.num_bins - 1)).astype(np.int64)
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
        tokens = logits[..., :CONTINUOUS_DIMS, :].argmax(dim=-1)
        mode = logits[..., MODE_DIM, : self.num_modes].argmax(dim=-1, keepdim=True)
        return torch.cat([tokens, mode], dim=-1)

    def bin_width(self) -> np.ndarray:
        return (self._high - self._low) / (self.num_bins - 1)

    @staticmethod
    def _check_shape(shape: tuple[int, ...]) -> None:
        if not shape or shape[-1] != NUM_ACTION_DIMS:
            raise ValueError(f"actions/tokens need a last axis of {NUM_ACTION_DIMS}, got shape {shape}")
