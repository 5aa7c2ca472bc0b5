"""The 11-d RT-1 action: which index is what, the mode classes and the per-robot ranges. Imports no torch.

The layout is the RT-1 paper's (Brohan et al. 2022, "RT-1: Robotics Transformer for Real-World Control at Scale":
seven arm dimensions, three base dimensions and a discrete mode), one action per control step:

    ARM_DIMS          0:7   arm_x arm_y arm_z arm_roll arm_pitch arm_yaw gripper  (RT1Action.arm)
      ARM_DELTA_DIMS  0:6   arm_x ... arm_yaw                                     (ArmCommand's deltas)
      GRIPPER_DIM     6     gripper
    BASE_DIMS         7:10  base_x base_y base_yaw                                (RT1Action.base, cmd_vel)
    MODE_DIM          10    mode
    CONTINUOUS_DIMS = 10 dimensions before the mode; NUM_ACTION_DIMS = 11 in all

Arm values are per-step end-effector deltas (m, rad) and the gripper's closedness (0 open, 1 closed); base values
are velocities (m/s, rad/s); the mode is a class index into ``ActionSpaceConfig.mode_classes`` (README "Topics and
services of `rt1_node`", docs/model.md). The simulator, the demonstration data, the ROS messages and the model all
read the layout from here, so the ROS-free and torch-free parts (``rt1_ros.sim``, ``rt1_ros.data``) need no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from rt1_ros.configuration.yaml_config import config_dir, load_dataclass

NUM_ACTION_DIMS = 11
CONTINUOUS_DIMS = 10  # every dimension before the mode
ARM_DIMS = slice(0, 7)  # x y z roll pitch yaw gripper (RT1Action.arm)
ARM_DELTA_DIMS = slice(0, 6)  # x y z roll pitch yaw (ArmCommand's deltas)
GRIPPER_DIM = 6
BASE_DIMS = slice(7, 10)  # x y yaw (RT1Action.base, cmd_vel)
MODE_DIM = 10

DIMENSION_NAMES = ("arm_x", "arm_y", "arm_z", "arm_roll", "arm_pitch", "arm_yaw", "gripper",
                   "base_x", "base_y", "base_yaw", "mode")
MODE_CLASSES = ("arm", "base", "terminate")  # the mode head's classes, in the default order
ROUNDINGS = ("round", "truncate")


class Mode(IntEnum):
    """A published step's mode. Values match the RT1Action message constants (MODE_ARM, ...); the first three are
    the mode classes in their default order, HOLD is what the node publishes when no valid action exists."""

    ARM = 0
    BASE = 1
    TERMINATE = 2
    HOLD = 255


@dataclass(frozen=True)
class ActionDimension:
    """One continuous dimension: the range the tokenizer's bins cover (the model's units), and how a decoded value
    maps onto the robot: ``scale`` × value + ``offset``, applied by the node before smoothing and its limits. The
    project's checkpoints decode in the robot's units (1, 0); a converted release decodes in Google's robot's units,
    which each robot calibrates (docs/released_weights.md "Calibrating a robot")."""

    name: str
    low: float
    high: float
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"action dimension {self.name}: need finite low < high, got [{self.low}, {self.high}]")
        if not (np.isfinite(self.scale) and np.isfinite(self.offset) and self.scale != 0.0):
            raise ValueError(f"action dimension {self.name}: need a finite, non-zero scale and a finite offset, got "
                             f"scale {self.scale}, offset {self.offset}")


@dataclass(frozen=True)
class ActionSpaceConfig:
    """One robot's ranges of the continuous dimensions, the tokenizer's bin count and the mode classes' order
    (config/action_space.yaml; a checkpoint carries its own)."""

    dimensions: tuple[ActionDimension, ...]
    num_bins: int = 256
    mode_classes: tuple[str, ...] = MODE_CLASSES
    # How a value becomes a bin: "round" to the nearest (this project's tokenizer) or "truncate" (the released
    # RT-1's int((v - lo) / (hi - lo) * (bins - 1))), which a converted checkpoint's action space records.
    rounding: str = "round"

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        if len(self.dimensions) != CONTINUOUS_DIMS:
            raise ValueError(f"expected {CONTINUOUS_DIMS} continuous dimensions, got {len(self.dimensions)}")
        if not 2 <= self.num_bins <= 256:
            raise ValueError("num_bins must be in [2, 256] (tokens travel as uint8)")
        if tuple(self.mode_classes) != MODE_CLASSES:  # the node publishes the index as RT1Action.mode
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
    def scale(self) -> np.ndarray:
        return np.array([d.scale for d in self.dimensions], dtype=np.float64)

    @property
    def offset(self) -> np.ndarray:
        return np.array([d.offset for d in self.dimensions], dtype=np.float64)

    def onto_robot(self, continuous: np.ndarray) -> np.ndarray:
        """(..., 10) decoded values in the model's units -> the robot's: scale × value + offset per dimension."""
        return self.scale * continuous + self.offset

    def actions_from_robot(self, actions: np.ndarray) -> np.ndarray:
        """(..., 11) actions in the robot's units (a demonstration) -> the model's, `onto_robot` undone on the
        continuous dimensions: (value - offset) / scale; the mode is a class index and stays. float64."""
        model_units = np.array(actions, dtype=np.float64)
        model_units[..., :CONTINUOUS_DIMS] = (model_units[..., :CONTINUOUS_DIMS] - self.offset) / self.scale
        return model_units

    def decoding_differences(self, other: "ActionSpaceConfig") -> list[str]:
        """What ``other`` decodes tokens into differently (bins, rounding, ranges beyond 1e-6 of their width),
        named; scale and offset, the robot's side, may differ."""
        found = [f"{what} {mine} vs {theirs}" for what, mine, theirs in
                 (("num_bins", self.num_bins, other.num_bins), ("rounding", self.rounding, other.rounding))
                 if mine != theirs]
        for mine, theirs in zip(self.dimensions, other.dimensions):
            tolerance = 1e-6 * (mine.high - mine.low)
            if (mine.name != theirs.name or abs(mine.low - theirs.low) > tolerance
                    or abs(mine.high - theirs.high) > tolerance):
                found.append(f"{mine.name} [{mine.low!r}, {mine.high!r}] vs {theirs.name} [{theirs.low!r}, "
                             f"{theirs.high!r}]")
        return found

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions) + ("mode",)

    def mode_index(self, mode_name: str) -> int:
        return self.mode_classes.index(mode_name)
