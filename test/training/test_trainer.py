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
from rt1_ros.training.objective import AUXILIARY_HEAD_FILE
from rt1_ros.training.trainer import Trainer


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 loss scaling runs on CUDA only")
def test_float16_resume_continues_from_the_saved_loss_scale(dataset, fast, tmp_path):
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), fast + [f"data={dataset}", "total_steps=6", "mixed_precision=float16"])
    Trainer(config, run, progress=False, device="cuda").run()
    state_file = run / "latest" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert state["grad_scaler"]["scale"] > 0
    state["grad_scaler"]["scale"] = 1024.0  # not the default 2**16, so a resume that ignores it shows
    state_file.write_text(json.dumps(state))
    resumed = Trainer(parse_overrides(config, ["total_steps=8"]), run, resume=True, progress=False, device="cuda")
    assert resumed.scaler.get_scale() == 1024.0


def test_auxiliary_scene_state_head_trains_and_stays_out_of_the_policy(write_dataset, fast, tmp_path):
    data = tmp_path / "data"
    write_dataset(data, scene_state=True)
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), fast + [f"data={data}", "total_steps=10", "auxiliary_state_weight=1.0",
                                                    "target_sigma_bins=3.0"])
    trainer = Trainer(config, run, progress=False, device="cpu")
    head = trainer.objective.auxiliary_head
    assert head is not None and head.projection.out_features == 2
    fixed = next(trainer.train_sampler.sequential(max_targets=64))
    assert fixed.scene_state is not None and fixed.scene_state.shape == (len(fixed.targets), 2)

    def auxiliary_loss() -> float:
        trainer.policy.train()
        torch.manual_seed(1)
        with torch.no_grad():
            return trainer.objective(trainer._to_device(fixed))[1]["auxiliary_loss"].item()

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
    torch.testing.assert_close(resumed.objective.auxiliary_head.projection.weight, head.projection.weight)


def test_auxiliary_weight_without_recorded_state_is_refused(dataset, fast, tmp_path):
    config = parse_overrides(TrainConfig(), fast + [f"data={dataset}", "auxiliary_state_weight=1.0"])
    with pytest.raises(SystemExit, match="scene_state"):
        Trainer(config, tmp_path / "run", progress=False, device="cpu")


def test_target_cell_head_learns_where_the_named_object_is(fast, tmp_path):
    """With target_cell_weight the trainer reads the object's image position from scene_state.npy by name, the
    head learns to find a bright square anywhere in the frame, and it stays out of the policy's checkpoint."""
    from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter
    from rt1_ros.training.objective import TARGET_CELL_HEAD_FILE

    rng = np.random.default_rng(0)
    writer = EpisodeWriter(tmp_path / "data")
    names = ["target_x", "target_image_u", "target_image_v"]
    # Frames at the tiny model's own 96 px, whose 6×6 token grid can resolve a 16 px square's cell.
    steps, size, square = 6, 96, 16
    for seed in range(6):
        frames = np.full((steps, size, size, 3), 20, np.uint8)
        corners = rng.integers(0, size - square, size=(steps, 2))
        for frame, (top, left) in zip(frames, corners):
            frame[top:top + square, left:left + square] = 250
        centres = (corners + square / 2) / size  # (steps, 2): v, u
        state = np.stack([np.zeros(steps), centres[:, 1], centres[:, 0]], axis=1).astype(np.float32)
        actions = np.zeros((steps, 11), np.float32)
        actions[:, 6] = 1.0
        actions[-1, 10] = 2
        writer.write(frames, actions, EpisodeInfo(instruction="pick up the red cube", task_family="pick", seed=seed,
                                                  success=True, source="test", fps=3.0,
                                                  extra={"scene_state_names": names}), scene_state=state)
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), fast + [f"data={tmp_path / 'data'}", "total_steps=60", "image_size=96",
                                                    "target_cell_weight=1.0", "learning_rate=0.01",
                                                    "crop_scale_min=1.0", "eval_every=30"])
    trainer = Trainer(config, run, progress=False, device="cpu")
    head = trainer.objective.target_cell_head
    assert head is not None and head.image_columns == (1, 2)
    fixed = next(trainer.train_sampler.sequential(max_targets=64))

    def cell_loss_and_accuracy() -> tuple[float, float]:
        trainer.policy.eval()
        with torch.no_grad():
            outputs = trainer.objective(trainer._to_device(fixed))[1]
        return outputs["target_cell_loss"].item(), outputs["target_cell_accuracy"].item()

    # The bounds come from the data: a head that knows nothing scores about ln(cells); the best one scores the
    # entropy of its soft targets. Training must close at least half of that gap and find the right cell far
    # more often than chance (1 in 36).
    cells = 6 * 6
    _, target = head.target_distribution(torch.as_tensor(fixed.scene_state), 6)
    floor = float(-(target * target.clamp_min(1e-12).log()).sum(dim=1).mean())
    before, _ = cell_loss_and_accuracy()
    assert before > floor + 0.9 * (np.log(cells) - floor), "an untrained head should be near chance"
    trainer.run()
    after, accuracy = cell_loss_and_accuracy()

    assert after < floor + 0.5 * (before - floor), (before, after, floor)
    assert accuracy > 10 / cells, accuracy
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert any(r["train_target_cell_loss"] for r in rows) and any(r["val_target_cell_acc"] for r in rows)
    assert (run / "latest" / TARGET_CELL_HEAD_FILE).is_file()
    model, _, _ = from_pretrained(run / "latest")
    assert not any("target_cell" in key for key in model.state_dict())
    resumed = Trainer(parse_overrides(config, ["total_steps=62"]), run, resume=True, progress=False, device="cpu")
    torch.testing.assert_close(resumed.objective.target_cell_head.projection.weight,
                               trainer.objective.target_cell_head.projection.weight)


def test_target_cell_weight_without_image_positions_is_refused(write_dataset, fast, tmp_path):
    write_dataset(tmp_path / "data", scene_state=True)
    config = parse_overrides(TrainConfig(), fast + [f"data={tmp_path / 'data'}", "target_cell_weight=1.0"])
    with pytest.raises(SystemExit, match="target_image_u"):
        Trainer(config, tmp_path / "run", progress=False, device="cpu")


def test_fine_tuning_starts_from_a_checkpoint_and_its_heads_on_more_data(write_dataset, fast, tmp_path):
    """init_checkpoint + extra_data (the DAgger stage of `make model`): the weights and training-only heads start as
    saved, the model config is the checkpoint's, both datasets are trained on and `data` keeps its own validation
    episodes."""
    first, more = tmp_path / "first", tmp_path / "more"
    write_dataset(first, episodes=8, scene_state=True)
    write_dataset(more, episodes=4, scene_state=True)
    base = fast + ["auxiliary_state_weight=1.0"]
    trainer = Trainer(parse_overrides(TrainConfig(), base + [f"data={first}", "total_steps=5"]), tmp_path / "run",
                      progress=False, device="cpu")
    trainer.run()
    alone_val = {e.path for e in trainer.validation_episodes}

    tuned = Trainer(parse_overrides(TrainConfig(), base + [f"data={first}", f"extra_data=[{more}]",
                                                           f"init_checkpoint={tmp_path / 'run' / 'latest'}",
                                                           "image_size=48", "total_steps=3"]),
                    tmp_path / "tuned", progress=False, device="cpu")
    assert tuned.model.config.image_size == 32  # the checkpoint's, not the override's 48
    saved, _, _ = from_pretrained(tmp_path / "run" / "latest")
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value)
    torch.testing.assert_close(tuned.objective.auxiliary_head.projection.weight,
                               trainer.objective.auxiliary_head.projection.weight)
    assert tuned.step == 0 and not tuned.optimizer.state_dict()["state"]  # a fresh optimizer and schedule
    assert tuned.dataset_summary["episodes"] == 12
    tuned_val = {e.path for e in tuned.validation_episodes}
    assert alone_val <= tuned_val and any(str(more) in str(p) for p in tuned_val)
    assert tuned.run()["step"] == 3
    with pytest.raises(SystemExit, match="init_checkpoint"):
        Trainer(parse_overrides(TrainConfig(), base + [f"data={first}", f"init_checkpoint={tmp_path / 'nothing'}"]),
                tmp_path / "bad", progress=False, device="cpu")


def test_instruction_noise_reaches_training_batches_and_never_validation(dataset, fast, tmp_path, monkeypatch):
    import rt1_ros.training.trainer as trainer_module

    config = parse_overrides(TrainConfig(), fast + [f"data={dataset}", "instruction_noise=0.5"])
    trainer = Trainer(config, tmp_path / "run", progress=False, device="cpu")
    batch = trainer.training_batch(np.random.default_rng(3))
    clean = trainer.train_sampler.sample(np.random.default_rng(3))  # the same draw, before the noise
    table_rows = trainer.text_table[clean.frame_instruction]
    cosine = torch.nn.functional.cosine_similarity(batch["frame_text"], table_rows, dim=-1)
    assert (cosine >= np.sqrt(1.0 - 0.5 ** 2) - 1e-4).all() and cosine.mean() < 0.99, cosine

    def no_noise_here(*args, **kwargs):
        raise AssertionError("validation must see the instructions as worded")

    monkeypatch.setattr(trainer_module, "noisy_instructions", no_noise_here)
    assert trainer.validate()["val_loss"] > 0
    with pytest.raises(AssertionError, match="as worded"):  # the patch is where training takes it from
        trainer.training_batch(np.random.default_rng(3))


def test_reword_paraphrases_without_rewording_is_refused():
    with pytest.raises(ValueError, match="reword_instructions"):
        TrainConfig(reword_paraphrases=True)
    assert TrainConfig(reword_instructions=True, reword_paraphrases=True).reword_paraphrases


def test_instruction_noise_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="instruction_noise"):
        TrainConfig(instruction_noise=-0.1)
    with pytest.raises(ValueError, match="instruction_noise"):
        TrainConfig(instruction_noise=1.5)


def test_a_size_trains_with_another_action_readout_and_the_node_loads_it(dataset, fast, tmp_path):
    config = parse_overrides(TrainConfig(), fast + [f"data={dataset}", "total_steps=3",
                                                     "action_readout=action_positions"])
    trainer = Trainer(config, tmp_path / "run", progress=False, device="cpu")
    assert trainer.model.config.action_readout == "action_positions" and trainer.model.config.supervises_every_frame
    batch = trainer.training_batch(np.random.default_rng(0))
    assert batch["targets"].dim() == 3  # (N,T,11): every frame of each window is supervised
    assert trainer.run()["step"] == 3
    model, _, _ = from_pretrained(tmp_path / "run" / "latest")
    assert model.config.action_readout == "action_positions"
    loaded = load_policy(PolicySource(checkpoint=str(tmp_path / "run" / "latest"), device="cpu"))
    loaded.policy.set_instruction("pick up the red cube")
    assert loaded.policy.select_action(np.full((60, 80, 3), 200, np.uint8)).tokens.shape == (11,)
    plain = Trainer(parse_overrides(config, ['action_readout=""']), tmp_path / "plain", progress=False, device="cpu")
    assert plain.model.config.action_readout == "last_token"  # the tiny size's own


def test_an_unknown_action_readout_is_refused(dataset, fast, tmp_path):
    config = parse_overrides(TrainConfig(), fast + [f"data={dataset}", "action_readout=middle_token"])
    with pytest.raises(SystemExit, match="action_readout"):
        Trainer(config, tmp_path / "run", progress=False, device="cpu")
