"""AdamW as training uses it: which parameters decay, and the learning rate at each step (linear warm-up over
`warmup_steps`, then cosine decay to `min_learning_rate_ratio` of the peak)."""
from __future__ import annotations

import math
from typing import Iterable

import torch

from rt1_ros.training.config import TrainConfig

NamedParameters = Iterable[tuple[str, torch.nn.Parameter]]


# The parameters an ImageNet-initialised backbone brings (rt1-train backbone_weights): its stem and blocks. Their
# FiLM layers, the token projection and everything after are RT-1's own and start fresh.
PRETRAINED_PREFIXES = ("image_encoder.stem.", "image_encoder.blocks.")


def make_optimizer(named_parameters: NamedParameters, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over two groups: decayed weights, and norms/biases/positional embeddings without weight decay; with
    ImageNet backbone weights and a `backbone_learning_rate_ratio` below 1, the backbone's own parameters form two
    more groups at that fraction of the rate."""
    slow = PRETRAINED_PREFIXES if config.backbone_weights and not config.init_checkpoint else ()
    return torch.optim.AdamW(parameter_groups(named_parameters, slow, config.backbone_learning_rate_ratio),
                             lr=config.learning_rate, weight_decay=config.weight_decay)


def parameter_groups(named_parameters: NamedParameters, slow_prefixes: tuple[str, ...] = (),
                     slow_ratio: float = 1.0) -> list[dict]:
    """[decayed, not decayed] (+ the same two at ``slow_ratio`` of the rate for names starting with
    ``slow_prefixes``, when that ratio is not 1). Each group's ``lr_scale`` is what `set_learning_rate` applies."""
    # No weight decay on norms, biases and positional embeddings: decaying them only fights the data.
    groups = {(False, False): [], (False, True): [], (True, False): [], (True, True): []}
    for name, parameter in named_parameters:
        slow = slow_ratio != 1.0 and name.startswith(slow_prefixes)
        groups[(slow, parameter.ndim <= 1 or "position" in name)].append(parameter)
    out = [{"params": groups[(False, False)]}, {"params": groups[(False, True)], "weight_decay": 0.0}]
    if groups[(True, False)] or groups[(True, True)]:
        out += [{"params": groups[(True, False)], "lr_scale": slow_ratio},
                {"params": groups[(True, True)], "weight_decay": 0.0, "lr_scale": slow_ratio}]
    return out


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
        group["lr"] = lr * group.get("lr_scale", 1.0)
