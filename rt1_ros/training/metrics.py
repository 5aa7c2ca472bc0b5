"""What a run measures and where it goes: metrics.csv (training rows every `log_every` steps, validation rows every
`eval_every`), the running means behind a training row, and the tallies behind a validation row."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch

from rt1_ros.model.action_tokenizer import MODE_DIM, NUM_ACTION_DIMS, ActionSpaceConfig, ActionTokenizer

METRICS_FILE = "metrics.csv"
METRIC_COLUMNS = ["step", "elapsed_s", "lr", "train_loss", "train_token_acc", "targets_per_s", "val_loss",
                  "val_token_acc", "val_arm_step_error_mm", "train_auxiliary_loss", "val_auxiliary_loss",
                  "train_target_cell_loss", "val_target_cell_loss", "train_target_cell_acc", "val_target_cell_acc"]
ARM_POSITION = slice(0, 3)  # arm_x arm_y arm_z


class MetricsLog:
    """metrics.csv in the run directory, appended to (a resumed run continues the same file), flushed per row.
    Columns: METRIC_COLUMNS, then the validation accuracy of each action dimension (``val_acc_<name>``); other keys
    (the per-family accuracies) are left out of the file."""

    def __init__(self, output: Path, dimension_names: tuple[str, ...] | list[str]) -> None:
        path = output / METRICS_FILE
        new_file = not path.exists() or path.stat().st_size == 0
        columns = METRIC_COLUMNS + [f"val_acc_{n}" for n in dimension_names]
        if not new_file:
            # A resumed run keeps the file's own header (it may predate a column), so every row stays aligned.
            with open(path, newline="") as existing:
                columns = next(csv.reader(existing), columns)
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        if new_file:
            self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TrainWindow:
    """Training-step results since the last training row: their means, and the targets per second over the window."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self.head_losses: dict[str, list[float]] = {}
        self.targets_seen = 0
        self.started = time.perf_counter()

    def add(self, loss: float, accuracy: float, targets: int, head_losses: dict[str, float]) -> None:
        """One step; ``head_losses``: the training-only heads' figures by metric name (auxiliary_loss, ...)."""
        self.losses.append(loss)
        self.accuracies.append(accuracy)
        self.targets_seen += targets
        for name, value in head_losses.items():
            self.head_losses.setdefault(name, []).append(value)

    def targets_per_s(self, now: float) -> float:
        return self.targets_seen / max(1e-9, now - self.started)

    def row(self, now: float) -> dict:
        """The window's metrics (train_loss, train_token_acc, targets_per_s, train_<head metric> when trained)."""
        row = {"train_loss": float(np.mean(self.losses)), "train_token_acc": float(np.mean(self.accuracies)),
               "targets_per_s": round(self.targets_per_s(now), 1)}
        row.update({f"train_{name}": float(np.mean(values)) for name, values in self.head_losses.items()})
        return row


class ValidationTally:
    """Sums over the validation batches, turned into the validation metrics by `metrics`."""

    def __init__(self, action_space: ActionSpaceConfig, device: torch.device) -> None:
        self.action_space = action_space
        self.arm_mode = action_space.mode_index("arm")
        bin_width_m = ActionTokenizer(action_space).bin_width()[ARM_POSITION]  # (3,)
        self.arm_bin_width_mm = torch.as_tensor(bin_width_m * 1000.0, dtype=torch.float32, device=device)
        self.total_loss, self.count = 0.0, 0
        self.head_totals: dict[str, list[float]] = {}  # metric name -> [sum weighted by targets, targets]
        self.arm_error_sum, self.arm_error_count = 0.0, 0
        self.correct = torch.zeros(NUM_ACTION_DIMS)
        self.family_correct: dict[str, list[float]] = {}

    def add(self, loss: torch.Tensor, predicted: torch.Tensor, targets: torch.Tensor, families: list[str],
            head_losses: dict[str, torch.Tensor]) -> None:
        """One batch: its mean action loss, predicted and target tokens (N,11), families (N,), and the training-only
        heads' figures by metric name."""
        for name, value in head_losses.items():
            total = self.head_totals.setdefault(name, [0.0, 0])
            total[0] += value.item() * len(targets)
            total[1] += len(targets)
        hits = (predicted == targets).float().cpu()  # (N,11)
        arm_steps = targets[:, MODE_DIM] == self.arm_mode
        arm_error_bins = (predicted[arm_steps, ARM_POSITION] - targets[arm_steps, ARM_POSITION]).abs().float()  # (n,3)
        self.arm_error_sum += (arm_error_bins * self.arm_bin_width_mm).norm(dim=1).sum().item()
        self.arm_error_count += int(arm_steps.sum())
        self.total_loss += loss.item() * len(targets)
        self.count += len(targets)
        self.correct += hits.sum(dim=0)
        for family, row in zip(families, hits):
            self.family_correct.setdefault(family, [0.0, 0])
            self.family_correct[family][0] += row.mean().item()
            self.family_correct[family][1] += 1

    def metrics(self) -> dict:
        """val_loss, val_token_acc, [val_<head metric>], [val_arm_step_error_mm], val_acc_<dimension>,
        val_acc_family_<family>."""
        per_dim = self.correct / self.count
        metrics = {"val_loss": self.total_loss / self.count, "val_token_acc": per_dim.mean().item()}
        metrics.update({f"val_{name}": total / count for name, (total, count) in self.head_totals.items()})
        if self.arm_error_count:
            # The decoded arm step's distance from the demonstration's, over arm-mode steps: a closeness the exact
            # token accuracy (one 0.4 mm bin) cannot show.
            metrics["val_arm_step_error_mm"] = self.arm_error_sum / self.arm_error_count
        metrics.update({f"val_acc_{name}": per_dim[i].item() for i, name in enumerate(self.action_space.names)})
        metrics.update({f"val_acc_family_{f}": c / n for f, (c, n) in sorted(self.family_correct.items())})
        return metrics
