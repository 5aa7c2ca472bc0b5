"""Trainer: the loss goes down, checkpoints load in the node's loader and resume; the auxiliary scene-state head."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from rt1_ros.model.checkpoint import from_pretrained
from rt1_ros.runtime.policy_loading import PolicySource, load_policy
from rt1_ros.training.config import TrainConfig, parse_overrides
from rt1_ros.policy import LossConfig
from rt1_ros.training.optimizer_state import OPTIMIZER_FILE
from rt1_ros.training.trainer import AUXILIARY_HEAD_FILE, Trainer


@pytest.mark.slow
def test_smoke_train_loss_decreases_checkpoint_loads_and_resumes(dataset, fast, tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), fast + [f"data={dataset}", "total_steps=12"])
    trainer = Trainer(config, run, progress=False, device="cpu")
    fixed = next(trainer.train_sampler.sequential(max_targets=64))

    def loss_on_fixed_batch() -> float:
        trainer.policy.train()  # batch-norm statistics from the batch, as in training
        torch.manual_seed(1)
        with torch.no_grad():
            return trainer.policy(trainer._to_device(fixed), loss=LossConfig())[0].item()

    before = loss_on_fixed_batch()
    result = trainer.run()
    after = loss_on_fixed_batch()
    assert result["step"] == 12
    assert after < before - 1.0, (before, after)

    for name in ("latest", "best"):
        assert (run / name / "model.safetensors").is_file() and (run / name / OPTIMIZER_FILE).is_file()
    assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert any(r["val_token_acc"] for r in rows) and any(r["train_loss"] for r in rows)

    # What the node loads.
    model, action_space, extra = from_pretrained(run / "best")
    assert model.config.image_size == 32 and extra["step"] in (5, 10, 12)
    loaded = load_policy(PolicySource(checkpoint=str(run / "best"), device="cpu"))
    loaded.policy.set_instruction("pick up the red cube")
    step = loaded.policy.select_action(np.full((60, 80, 3), 200, np.uint8))
    assert step.tokens.shape == (11,) and 0 <= step.tokens[10] < 3

    # Resume: step count, weights and optimizer moments continue from `latest`.
    saved_state = json.loads((run / "latest" / "trainer_state.json").read_text())
    assert saved_state["step"] == 12
    resumed = Trainer(parse_overrides(config, ["total_steps=14"]), run, resume=True, progress=False, device="cpu")
    assert resumed.step == 12
    saved_model, _, _ = from_pretrained(run / "latest")
    for key, value in saved_model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)
    original = trainer.optimizer.state_dict()["state"]
    restored = resumed.optimizer.state_dict()["state"]
    assert original.keys() == restored.keys()
    for param_id in original:
        torch.testing.assert_close(restored[param_id]["exp_avg_sq"], original[param_id]["exp_avg_sq"])
    assert resumed.run()["step"] == 14


def test_auxiliary_scene_state_head_trains_and_stays_out_of_the_policy(write_dataset, fast, tmp_path):
    data = tmp_path / "data"
    write_dataset(data, scene_state=True)
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), fast + [f"data={data}", "total_steps=10", "auxiliary_state_weight=1.0",
                                                    "target_sigma_bins=3.0"])
    trainer = Trainer(config, run, progress=False, device="cpu")
    head = trainer.auxiliary_head
    assert head is not None and head.projection.out_features == 2
    fixed = next(trainer.train_sampler.sequential(max_targets=64))
    assert fixed.scene_state is not None and fixed.scene_state.shape == (len(fixed.targets), 2)

    def auxiliary_loss() -> float:
        trainer.policy.train()
        torch.manual_seed(1)
        with torch.no_grad():
            return trainer.policy(trainer._to_device(fixed))[1]["auxiliary_loss"].item()

    before = auxiliary_loss()
    trainer.run()
    assert auxiliary_loss() < before
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert any(r["train_auxiliary_loss"] for r in rows) and any(r["val_auxiliary_loss"] for r in rows)
    assert any(r["val_arm_step_error_mm"] for r in rows)
    # The head is the trainer's: the node's checkpoint holds only the policy, the run directory keeps the head.
    assert (run / "latest" / AUXILIARY_HEAD_FILE).is_file()
    model, _, _ = from_pretrained(run / "latest")
    assert not any("auxiliary" in key for key in model.state_dict())
    resumed = Trainer(parse_overrides(config, ["total_steps=12"]), run, resume=True, progress=False, device="cpu")
    torch.testing.assert_close(resumed.auxiliary_head.projection.weight, head.projection.weight)


def test_auxiliary_weight_without_recorded_state_is_refused(dataset, fast, tmp_path):
    config = parse_overrides(TrainConfig(), fast + [f"data={dataset}", "auxiliary_state_weight=1.0"])
    with pytest.raises(SystemExit, match="scene_state"):
        Trainer(config, tmp_path / "run", progress=False, device="cpu")
