"""The optimizer: the learning-rate schedule, weight-decay groups, and its state saved without pickle."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rt1_ros.training.config import TrainConfig
from rt1_ros.training.optimizer import learning_rate_at, make_optimizer, parameter_groups
from rt1_ros.training.optimizer_state import OPTIMIZER_FILE, load_optimizer_state, save_optimizer_state


def test_schedule_warms_up_then_decays_to_the_floor():
    config = TrainConfig(learning_rate=1e-3, warmup_steps=10, min_learning_rate_ratio=0.1)
    assert learning_rate_at(config, 0, 0.0) == pytest.approx(1e-4)
    assert learning_rate_at(config, 10, 0.0) == pytest.approx(1e-3)
    assert learning_rate_at(config, 50, 0.5) == pytest.approx(0.55e-3)
    assert learning_rate_at(config, 99, 1.0) == pytest.approx(1e-4)


def test_norms_biases_and_positions_are_not_decayed():
    linear, norm, position = nn.Linear(4, 4), nn.LayerNorm(4), nn.Parameter(torch.zeros(3, 4))
    named = [("linear.weight", linear.weight), ("linear.bias", linear.bias), ("norm.weight", norm.weight),
             ("position_embedding", position)]
    decay, no_decay = parameter_groups(named)
    assert decay["params"] == [linear.weight] and "weight_decay" not in decay
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = make_optimizer(model.named_parameters(), TrainConfig())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_optimizer_state(optimizer, tmp_path)
    assert (tmp_path / OPTIMIZER_FILE).is_file() and (tmp_path / "optimizer.json").is_file()
    restored = make_optimizer(model.named_parameters(), TrainConfig())
    load_optimizer_state(restored, tmp_path)
    for param_id, entries in optimizer.state_dict()["state"].items():
        for name, value in entries.items():
            torch.testing.assert_close(torch.as_tensor(restored.state_dict()["state"][param_id][name]),
                                       torch.as_tensor(value))
    # JSON keeps the groups' values (AdamW's betas tuple comes back as a list).
    assert restored.state_dict()["param_groups"] == json.loads(json.dumps(optimizer.state_dict()["param_groups"]))
