"""AdamW as training uses it: which parameters decay, and the learning rate at each step (linear warm-up over
`warmup_steps`, then cosine decay to `min_learning_rate_ratio` of the peak)."""
from __future__ import annotations

import math
from typing import Iterable

import torch

from rt1_ros.training.config import TrainConfig

NamedParameters = Iterable[tuple[str, torch.nn.Parameter]]


def make_optimizer(named_parameters: NamedParameters, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over two groups: decayed weights, and norms/biases/positional embeddings without weight decay."""
    return torch.optim.AdamW(parameter_groups(named_parameters), lr=config.learning_rate,
                             weight_decay=config.weight_decay)


def parameter_groups(named_parameters: NamedParameters) -> list[dict]:
    # No weight decay on norms, biases and positional embeddings: decaying them only fights the data.
    decay, no_decay = [], []
    for name, parameter in named_parameters:
        (no_decay if parameter.ndim <= 1 or "position" in name else decay).append(parameter)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from the peak to `min_learning_rate_ratio` of it.

    ``progress`` in [0, 1] drives the cosine rather than the step alone: with a `time_budget_min` it is the larger of
    the step and time fractions, so training ends within the budget whatever the machine's speed."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    floor = peak * config.min_learning_rate_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
