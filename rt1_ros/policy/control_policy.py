"""What `rt1_ros.runtime.controller.Controller` needs from a policy, and what one control step returns.

`rt1_ros.policy.RT1Policy` is the real policy; tests drive the controller with scripted ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class PolicyStep:
    tokens: np.ndarray  # (11,) int
    action: np.ndarray  # (11,) float, decoded (mode as class index)
    inference_ms: float


@runtime_checkable
class ControlPolicy(Protocol):
    """``instruction`` is None while no instruction is set."""

    instruction: str | None

    def set_instruction(self, instruction: str) -> None:
        """Start an episode on this (validated) instruction; the frame history restarts."""

    def clear_instruction(self) -> None:
        """Drop the instruction; `select_action` is not called again until a new one is set."""

    def reset(self) -> None:
        """Restart the frame history (stale camera, failed step), keeping the instruction."""

    def select_action(self, rgb: np.ndarray) -> PolicyStep:
        """rgb (H,W,3) uint8 of the newest frame -> tokens and decoded action; may raise (the controller holds)."""
