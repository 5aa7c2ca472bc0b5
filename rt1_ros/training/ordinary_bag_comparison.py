"""`rt1-sim-bags compare`: the actions rt1-import-bag made from a recorded bag's ordinary topics against the ones
the expert commanded, per dimension (largest and 95th-percentile absolute error) and in the mode, against
ORDINARY_TOPIC_TOLERANCE."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt1_ros.configuration.action_layout import (DIMENSION_NAMES, GRIPPER_DIM, MODE_DIM, NUM_ACTION_DIMS,
                                                 ActionSpaceConfig)

# Beside each bag `rt1-sim-bags record` writes: per episode, keyed by its first image's stamp in ns, the (T, 11)
# actions the expert commanded.
EXPERT_SUFFIX = ".expert_actions.npz"

# The largest per-step error `compare` accepts between the expert's commanded action and the one imported from
# measured topics through config/rosbag_mapping_ordinary.yaml (docs/training.md says why).
ORDINARY_TOPIC_TOLERANCE = {
    "arm_x": 0.006, "arm_y": 0.008, "arm_z": 0.010,            # m per step (steps of up to 0.04 m)
    "arm_roll": 0.015, "arm_pitch": 0.02, "arm_yaw": 0.04,     # rad per step (yaw steps of up to 0.2 rad)
    "gripper": 0.0,                                             # closedness: thresholded, so exact
    "base_x": 0.03, "base_y": 0.03, "base_yaw": 0.02,          # m/s, rad/s (speeds up to 0.45 m/s)
}
MIN_MODE_AGREEMENT = 1.0


@dataclass
class DimensionError:
    name: str
    steps: int
    max_error: float
    p95_error: float
    tolerance: float

    @property
    def within(self) -> bool:
        return self.steps == 0 or self.max_error <= self.tolerance + 1e-9


@dataclass
class Comparison:
    dimensions: list[DimensionError]
    mode_agreement: float
    episodes: int
    steps: int

    @property
    def within(self) -> bool:
        return all(d.within for d in self.dimensions) and self.mode_agreement >= MIN_MODE_AGREEMENT

    def table(self) -> str:
        lines = [f"{self.episodes} episodes, {self.steps} steps; mode agrees on {self.mode_agreement:.1%}",
                 f"{'dimension':<10} {'steps':>6} {'max |err|':>10} {'p95 |err|':>10} {'tolerance':>10}"]
        for d in self.dimensions:
            flag = "" if d.within else "  OVER"
            lines.append(f"{d.name:<10} {d.steps:>6} {d.max_error:>10.4f} {d.p95_error:>10.4f} "
                         f"{d.tolerance:>10.4f}{flag}")
        return "\n".join(lines)


def compare_actions(pairs: list[tuple[np.ndarray, np.ndarray]], action_space: ActionSpaceConfig,
                    tolerance: dict[str, float] | None = None) -> Comparison:
    """Per-dimension errors of imported actions against the expert's, over pairs of (expert (T, 11), imported
    (T, 11)) of equal length. Arm dimensions count on the expert's arm steps, base dimensions on its base steps,
    the gripper on both; the terminate step counts only for the mode."""
    tolerance = tolerance or ORDINARY_TOPIC_TOLERANCE
    arm_mode, base_mode = action_space.mode_index("arm"), action_space.mode_index("base")
    errors: dict[int, list[float]] = {d: [] for d in range(NUM_ACTION_DIMS - 1)}
    agree = total = 0
    for expert, imported in pairs:
        if expert.shape != imported.shape:
            raise ValueError(f"an imported episode has {len(imported)} steps, its expert episode {len(expert)}")
        modes = np.rint(expert[:, MODE_DIM]).astype(int)
        agree += int(np.sum(modes == np.rint(imported[:, MODE_DIM]).astype(int)))
        total += len(expert)
        difference = np.abs(imported - expert)
        for step, mode in enumerate(modes):
            if mode == arm_mode:
                dims = list(range(0, 6)) + [GRIPPER_DIM]
            elif mode == base_mode:
                dims = list(range(7, 10)) + [GRIPPER_DIM]
            else:
                continue
            for d in dims:
                errors[d].append(float(difference[step, d]))
    dimensions = [DimensionError(name=DIMENSION_NAMES[d], steps=len(values),
                                 max_error=max(values, default=0.0),
                                 p95_error=float(np.percentile(values, 95)) if values else 0.0,
                                 tolerance=tolerance[DIMENSION_NAMES[d]]) for d, values in errors.items()]
    return Comparison(dimensions, agree / total if total else 1.0, len(pairs), total)


def imported_pairs(bags: str | Path, dataset: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(expert, imported) actions of every episode of ``dataset`` imported from a bag under ``bags``, matched by
    the bag's name and the episode's first tick."""
    from rt1_ros.data.dataset import EpisodeDataset

    bags = Path(bags)
    pairs = []
    for episode in EpisodeDataset(dataset):
        extra = episode.info.extra or {}
        expert_file = bags / (Path(extra.get("bag", "")).name + EXPERT_SUFFIX)
        if not expert_file.is_file():
            continue
        with np.load(expert_file, allow_pickle=False) as expert:
            key = str(extra.get("start_ns"))
            if key in expert.files:
                pairs.append((expert[key], episode.actions))
    return pairs
