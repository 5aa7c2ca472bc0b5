"""rt1-train: windows match inference, the loss goes down, checkpoints load in the node's loader and resume."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter
from rt1_ros.model.checkpoint import from_pretrained
from rt1_ros.runtime.frame_history import pad_window_indices
from rt1_ros.runtime.policy_loading import PolicySource, load_policy
from rt1_ros.train import (AUXILIARY_HEAD_FILE, OPTIMIZER_FILE, EpisodeArrays, TrainConfig, Trainer, WindowedRT1,
                           WindowSampler, action_loss, gaussian_bin_targets, learning_rate_at, main, parse_overrides)

FAST = ["image_size=32", "segments_per_batch=2", "segment_length=4", "val_fraction=0.25", "warmup_steps=2",
        "time_budget_min=0", "log_every=2", "eval_every=5", "checkpoint_every=5", "learning_rate=0.003",
        "crop_scale_min=0.9"]


def _write_dataset(root, episodes: int = 4, steps: int = 6, size: int = 40, scene_state: bool = False) -> None:
    """Episodes whose actions are readable from the image: the frame's brightness says the x command (and, with
    ``scene_state``, a privileged state column that is the brightness level too)."""
    rng = np.random.default_rng(0)
    writer = EpisodeWriter(root)
    for seed in range(episodes):
        levels = rng.integers(0, 3, size=steps)
        frames = np.zeros((steps, size, size, 3), np.uint8)
        frames[...] = (levels * 100)[:, None, None, None].astype(np.uint8)
        actions = np.zeros((steps, 11), np.float32)
        actions[:, 0] = (levels - 1) * 0.04
        actions[:, 6] = 1.0
        actions[-1, 10] = 2
        state = np.stack([levels, np.full(steps, seed)], axis=1).astype(np.float32) if scene_state else None
        writer.write(frames, actions, EpisodeInfo(instruction="pick up the red cube" if seed % 2 else
                                                  "move near the blue cube", task_family="pick", seed=seed,
                                                  success=True, source="test", fps=3.0), scene_state=state)


@pytest.fixture
def dataset(tmp_path):
    _write_dataset(tmp_path / "data")
    return tmp_path / "data"


def test_windows_are_front_padded_like_inference():
    config = TrainConfig(segment_length=4, segments_per_batch=2, crop_scale_min=1.0)
    frames = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((7, 8, 8, 3), np.uint8)
    episode = EpisodeArrays(frames=frames, tokens=np.zeros((7, 11), np.int64), instruction_index=0, family="f")
    sampler = WindowSampler([episode], num_frames=6, image_size=8, config=config)
    batch = sampler._assemble([(0, 0, 3), (0, 4, 7)], rng=None)
    # Rows 0-2 hold frames 0-2 of the first run; rows 3-9 frames 0-6 (the second run's 5 frames of context + its own).
    frame_ids = (batch.images[:, 0, 0, 0] * 255).round().long()
    for target, step in zip(range(6), [0, 1, 2, 4, 5, 6]):
        ids = frame_ids[batch.windows[target]].tolist()
        assert ids == pad_window_indices(step, 6), (step, ids)


def test_shared_frame_encoding_equals_the_per_window_forward():
    from rt1_ros.model.rt1 import RT1, RT1Config

    torch.manual_seed(0)
    model = RT1(RT1Config.from_yaml("tiny")).eval()
    images = torch.rand(8, 3, 96, 96)
    text = torch.randn(8, 384)
    text[:] = text[0]  # one run: one instruction
    windows = torch.tensor([pad_window_indices(i, 6) for i in range(8)])  # (8,6)
    with torch.no_grad():
        shared, _ = WindowedRT1(model)(images, text, windows)
        direct = model(images[windows], text[:8])  # (8,6,3,96,96): every window encoded from scratch
    torch.testing.assert_close(shared, direct, atol=1e-4, rtol=1e-4)


def test_loss_uses_only_the_valid_mode_classes():
    logits = torch.zeros(2, 11, 256)
    targets = torch.zeros(2, 11, dtype=torch.long)
    logits[:, 10, 3:] = 100.0  # invalid mode bins: must not matter
    loss, per_dim = action_loss(logits, targets, num_modes=3)
    assert per_dim[10].item() == pytest.approx(np.log(3), abs=1e-5)
    assert per_dim[0].item() == pytest.approx(np.log(256), abs=1e-4)
    assert loss.item() == pytest.approx(per_dim.mean().item())


def test_schedule_warms_up_then_decays_to_the_floor():
    config = TrainConfig(learning_rate=1e-3, warmup_steps=10, min_learning_rate_ratio=0.1)
    assert learning_rate_at(config, 0, 0.0) == pytest.approx(1e-4)
    assert learning_rate_at(config, 10, 0.0) == pytest.approx(1e-3)
    assert learning_rate_at(config, 50, 0.5) == pytest.approx(0.55e-3)
    assert learning_rate_at(config, 99, 1.0) == pytest.approx(1e-4)


def test_overrides_are_type_checked():
    config = parse_overrides(TrainConfig(), ["total_steps=7", "families=[pick]"])
    assert config.total_steps == 7 and config.families == ("pick",)
    with pytest.raises(ValueError):
        parse_overrides(TrainConfig(), ["no_such_key=1"])


@pytest.mark.slow
def test_smoke_train_loss_decreases_checkpoint_loads_and_resumes(dataset, tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), FAST + [f"data={dataset}", "total_steps=12"])
    trainer = Trainer(config, run, progress=False, device="cpu")
    fixed = next(trainer.train_sampler.sequential(max_targets=64))

    def loss_on_fixed_batch() -> float:
        trainer.windowed.train()  # batch-norm statistics from the batch, as in training
        torch.manual_seed(1)
        with torch.no_grad():
            images, text, windows, targets = trainer._to_device(fixed)
            return action_loss(trainer.windowed(images, text, windows)[0], targets, 3)[0].item()

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
    step = loaded.policy.step(np.full((60, 80, 3), 200, np.uint8))
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


def test_cli_runs_a_few_steps(dataset, tmp_path, capsys):
    assert main(["--data", str(dataset), "--output", str(tmp_path / "cli"), "--no-progress",
                 "--set", *FAST, "total_steps=3"]) == 0
    assert "node-loadable checkpoint" in capsys.readouterr().out
    assert (tmp_path / "cli" / "best" / "config.yaml").is_file()


def test_gaussian_targets_make_a_near_miss_cheaper_than_a_far_one():
    soft = gaussian_bin_targets(torch.tensor([0, 100, 255]), 256, sigma_bins=4.0)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(3))
    assert soft.argmax(dim=1).tolist() == [0, 100, 255]

    targets = torch.full((1, 11), 128, dtype=torch.long)
    targets[0, 10] = 0

    def loss_when_predicting(bin_index: int, sigma: float) -> float:
        logits = torch.full((1, 11, 256), -10.0)
        logits[0, :, bin_index] = 10.0
        logits[0, 10, 0] = 10.0
        return action_loss(logits, targets, num_modes=3, target_sigma_bins=sigma)[0].item()

    # One-hot: one bin off is as wrong as sixty. Gaussian: the loss knows which is closer.
    assert abs(loss_when_predicting(130, 0.0) - loss_when_predicting(190, 0.0)) < 1e-3
    assert loss_when_predicting(130, 4.0) < loss_when_predicting(190, 4.0) - 1.0


def test_auxiliary_scene_state_head_trains_and_stays_out_of_the_policy(tmp_path):
    data = tmp_path / "data"
    _write_dataset(data, scene_state=True)
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), FAST + [f"data={data}", "total_steps=10", "auxiliary_state_weight=1.0",
                                                    "target_sigma_bins=3.0"])
    trainer = Trainer(config, run, progress=False, device="cpu")
    head = trainer.auxiliary_head
    assert head is not None and head.projection.out_features == 2
    fixed = next(trainer.train_sampler.sequential(max_targets=64))
    assert fixed.scene_state is not None and fixed.scene_state.shape == (len(fixed.targets), 2)

    def auxiliary_loss() -> float:
        trainer.windowed.train()
        torch.manual_seed(1)
        with torch.no_grad():
            images, text, windows, _ = trainer._to_device(fixed)
            return head.loss(trainer.windowed(images, text, windows)[1], fixed.scene_state).item()

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


def test_auxiliary_weight_without_recorded_state_is_refused(dataset, tmp_path):
    config = parse_overrides(TrainConfig(), FAST + [f"data={dataset}", "auxiliary_state_weight=1.0"])
    with pytest.raises(SystemExit, match="scene_state"):
        Trainer(config, tmp_path / "run", progress=False, device="cpu")
