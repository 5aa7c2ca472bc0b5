"""TrainingObjective: the policy's action loss plus the weighted training-only heads, which never enter the policy or
its checkpoint; and the losses of the last-token layout's training steps, pinned to values recorded before the
heads and the readouts moved out of the policy and the model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rt1_ros.inference.frame_history import pad_window_indices
from rt1_ros.policy import LossConfig, RT1Policy, RT1PolicyConfig
from rt1_ros.training.heads import SceneStateHead
from rt1_ros.training.objective import TrainingObjective


def test_objective_adds_the_weighted_head_losses(tiny_config, action_space):
    torch.manual_seed(0)
    policy = RT1Policy(RT1PolicyConfig(model=tiny_config, action_space=action_space)).eval()
    head = SceneStateHead(tiny_config.embed_dim, torch.zeros(2), torch.ones(2))
    objective = TrainingObjective(policy, auxiliary_head=head, auxiliary_state_weight=2.0)
    unweighted = TrainingObjective(policy, auxiliary_head=head, auxiliary_state_weight=0.0)
    batch = {"images": torch.rand(6, 3, 96, 96), "frame_text": torch.randn(6, 384),
             "windows": torch.tensor([pad_window_indices(5, 6)]), "targets": torch.zeros(1, 11, dtype=torch.long),
             "scene_state": torch.tensor([[3.0, -1.0]])}
    with torch.no_grad():
        total, outputs = objective(batch)
        plain, _ = unweighted(batch, loss=LossConfig())
        action, _ = policy(batch)
    assert outputs["auxiliary_loss"].item() > 0.0 and outputs["target_cell_loss"] is None
    torch.testing.assert_close(outputs["action_loss"], action)
    torch.testing.assert_close(total, outputs["action_loss"] + 2.0 * outputs["auxiliary_loss"])
    torch.testing.assert_close(plain, outputs["action_loss"] + 0.0 * outputs["auxiliary_loss"])
    assert "auxiliary_head.projection.weight" in objective.state_dict()
    assert not any("auxiliary" in key for key in policy.state_dict())
    names = [name for name, _ in objective.trainable_named_parameters()]
    assert names[:len(list(policy.model.parameters()))] == [n for n, _ in policy.model.named_parameters()]
    assert names[-2:] == ["auxiliary_head.projection.weight", "auxiliary_head.projection.bias"]


def test_the_policy_checkpoint_never_holds_the_objectives_heads(tiny_config, action_space, tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    policy = RT1Policy(RT1PolicyConfig(model=tiny_config, action_space=action_space))
    objective = TrainingObjective(policy, SceneStateHead(tiny_config.embed_dim, torch.zeros(2), torch.ones(2)))
    policy.save_pretrained(tmp_path / "ckpt", extra={"step": 7})
    objective.save_heads(tmp_path / "ckpt")
    assert not any(k.startswith("auxiliary_head") for k in load_file(str(tmp_path / "ckpt" / "model.safetensors")))
    assert set(load_file(str(tmp_path / "ckpt" / "auxiliary_head.safetensors"))) == {
        "projection.weight", "projection.bias", "mean", "std"}
    loaded = RT1Policy.from_pretrained(tmp_path / "ckpt", lambda text: torch.zeros(384))
    assert not hasattr(loaded, "auxiliary_head") and not hasattr(loaded, "target_cell_head")
    fresh = TrainingObjective(loaded, SceneStateHead(tiny_config.embed_dim, torch.ones(2), torch.ones(2)))
    assert fresh.load_heads(tmp_path / "ckpt") == []
    torch.testing.assert_close(fresh.auxiliary_head.mean, torch.zeros(2))


def _write_grounding_dataset(root) -> None:
    """4 episodes of 7 steps: brightness says the x command, a bright square's position is the target's image
    position (scene_state: level, target_image_u, target_image_v)."""
    from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter

    rng = np.random.default_rng(0)
    writer = EpisodeWriter(root)
    names = ["level", "target_image_u", "target_image_v"]
    for seed in range(4):
        steps, size = 7, 40
        levels = rng.integers(0, 3, size=steps)
        frames = np.zeros((steps, size, size, 3), np.uint8)
        frames[...] = (levels * 60)[:, None, None, None].astype(np.uint8)
        corners = rng.integers(0, size - 10, size=(steps, 2))
        for frame, (top, left) in zip(frames, corners):
            frame[top:top + 10, left:left + 10] = 250
        centres = (corners + 5) / size
        state = np.stack([levels, centres[:, 1], centres[:, 0]], axis=1).astype(np.float32)
        actions = np.zeros((steps, 11), np.float32)
        actions[:, 0] = (levels - 1) * 0.04
        actions[:, 6] = 1.0
        actions[-1, 10] = 2
        writer.write(frames, actions, EpisodeInfo(instruction="pick up the red cube" if seed % 2 else
                                                  "move near the blue cube", task_family="pick", seed=seed,
                                                  success=True, source="test", fps=3.0,
                                                  extra={"scene_state_names": names}), scene_state=state)


# Recorded at the commit before the training-only heads left RT1Policy and the readouts left RT1 (one thread, CPU,
# float32): per step (loss, token accuracy, targets, head figures), then validation. The run for the shipped sim
# model was started with that code; the same seed must give it the same numbers.
RECORDED = {
    "plain": {"steps": [(5.331629276275635, 0.0, 2, {}), (4.988550186157227, 0.09090909361839294, 4, {}),
                        (4.1484808921813965, 0.40909090638160706, 4, {})],
              "val_loss": 3.139758825302124, "val_token_acc": 0.7402597069740295},
    "every_term": {"steps": [(8.896095275878906, 0.04545454680919647, 2,
                              {"auxiliary_loss": 2.1516239643096924, "target_cell_loss": 3.6444437503814697,
                               "target_cell_acc": 0.0}),
                             (8.438807487487793, 0.0, 4,
                              {"auxiliary_loss": 1.2647229433059692, "target_cell_loss": 3.674450397491455,
                               "target_cell_acc": 0.0}),
                             (8.169464111328125, 0.09090909361839294, 4,
                              {"auxiliary_loss": 1.2488245964050293, "target_cell_loss": 3.443065643310547,
                               "target_cell_acc": 0.0})],
                   "val_loss": 4.491012096405029, "val_token_acc": 0.07792207598686218,
                   "val_auxiliary_loss": 7.5139994621276855, "val_target_cell_loss": 3.581712245941162},
}
CASES = {"plain": [], "every_term": ["auxiliary_state_weight=0.5", "target_cell_weight=0.7", "target_sigma_bins=2.0",
                                     "label_smoothing=0.1", "history_dropout=0.3"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_last_token_training_steps_give_the_recorded_losses(case, fast, tmp_path):
    """Three optimizer steps and a validation pass. Tolerances: on one thread this machine reproduces the numbers
    exactly; another CPU's kernels sum in another order (two threads here move them by up to 4e-5 relative, the
    validation's auxiliary loss by 9e-4). A changed loss, batch, augmentation draw or head moves them by far more."""
    from rt1_ros.training.config import TrainConfig, parse_overrides
    from rt1_ros.training.trainer import Trainer, step_random_state

    _write_grounding_dataset(tmp_path / "data")
    config = parse_overrides(TrainConfig(), fast + [f"data={tmp_path / 'data'}", "num_threads=1",
                                                    "mixed_precision=none"] + CASES[case])
    trainer = Trainer(config, tmp_path / "run", progress=False, device="cpu")
    expected = RECORDED[case]
    for step, (loss, accuracy, targets, heads) in enumerate(expected["steps"]):
        got = trainer.train_step(step_random_state(config.seed, step, 0))
        trainer.step += 1
        assert got[0] == pytest.approx(loss, rel=2e-4), (step, got)
        assert (got[1], got[2]) == (pytest.approx(accuracy), targets)
        assert got[3].keys() == heads.keys()
        for name, value in heads.items():
            assert got[3][name] == pytest.approx(value, rel=2e-4, abs=1e-6), (step, name, got[3])
    metrics = trainer.validate()
    for name in ("val_loss", "val_token_acc", "val_auxiliary_loss", "val_target_cell_loss"):
        if name in expected:
            assert metrics[name] == pytest.approx(expected[name], rel=2e-3), name
        else:
            assert name not in metrics
