"""Fine-tuning a converted release: rt1-convert -> rt1-train (init_checkpoint) -> the node's loader and an ONNX path.

The released network here is built from the TensorFlow-written fixtures of test/convert/fixtures/official_small
(README there): the FiLM-EfficientNet of `effnet/` and the TokenLearner, transformer and output layer of `head/`
(vocab 64, 3 frames), plus the token projection and its FiLM, which neither fixture holds, drawn here. Merged into one
checkpoint in the released layout, it goes through rt1-convert like rt1main. It runs at 64 px (frames 64×80, the
release's 4:5) instead of 300 px (256×320), so a CPU trains it in seconds: the weights do not depend on the size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rt1_ros.configuration.yaml_config import to_mapping
from rt1_ros.convert.cli import main as convert_main
from official_small import FIXTURES, STAGES, STEM_CHANNELS, TOP_CHANNELS
from rt1_ros.convert.tensor_bundle import list_variables, read_variables, write_tensor_bundle
from rt1_ros.inference import onnx_export
from rt1_ros.inference.options import InferenceOptions
from rt1_ros.model.rt1 import RT1Config
from rt1_ros.policy import LossConfig, RT1Policy
from rt1_ros.runtime.policy_loading import PolicySource, load_policy
from rt1_ros.training.config import TrainConfig, parse_overrides
from rt1_ros.training.trainer import Trainer

TOKENIZER = "agent/_actor_network/_image_tokenizer/_tokenizer/"
VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"
INSTRUCTIONS = ("pick coke can", "move near the apple")
FRAME_SIZE = (64, 80)
# The release's crop (20, 50 at 256×320) at these frames' scale.
CROP_PADDING = "crop_padding=[5, 12]"
# How far an inference backend's logits may lie from eager torch's (ONNX Runtime fuses and reorders float32 sums).
LOGIT_TOLERANCE = 1e-3


def step_logits(policy: RT1Policy, frame: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """The node's step on ``frame`` (its tokens) and the logits they were decoded from, (11, bins)."""
    from rt1_ros.inference.paths import window_logits

    tokens = policy.select_action(frame).tokens
    with torch.inference_mode():
        logits = window_logits(policy.inference_path, policy.history.window())[0].float().cpu()
    return tokens, logits


def fixture_release(directory: Path) -> Path:
    """The merged checkpoint (ckpt-1) and the model config it converts as (model.yaml, size `fixture`)."""
    variables = {}
    for part in ("effnet", "head"):
        prefix = FIXTURES / part / "ckpt-1"
        names = [name for name in list_variables(prefix) if name.startswith("agent/")]
        variables.update(read_variables(prefix, names))
    generator = np.random.default_rng(0)
    variables[f"{TOKENIZER}conv1x1/kernel{VALUE}"] = (generator.normal(size=(1, 1, TOP_CHANNELS, 512))
                                                      * np.sqrt(2 / TOP_CHANNELS)).astype(np.float32)
    for part in ("mult", "add"):
        variables[f"{TOKENIZER}film_layer/_projection_{part}/kernel{VALUE}"] = (
            generator.normal(size=(512, 512)) * 0.1).astype(np.float32)
        variables[f"{TOKENIZER}film_layer/_projection_{part}/bias{VALUE}"] = (
            generator.normal(size=512) * 0.05).astype(np.float32)
    write_tensor_bundle(directory / "ckpt-1", variables)
    mapping = to_mapping(RT1Config.from_yaml("official"))
    mapping.update(num_frames=3, num_bins=64, image_size=64, input_frame_size=list(FRAME_SIZE))
    mapping["backbone"].update(stem_channels=STEM_CHANNELS, stages=STAGES, top_channels=TOP_CHANNELS,
                               token_grid=2)
    mapping["transformer"].update(num_layers=2, num_heads=2, head_dim=8, ffn_dim=32, width=32)
    (directory / "model.yaml").write_text(yaml.safe_dump({"fixture": mapping}), encoding="utf-8")
    return directory / "ckpt-1"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("release")
    source = fixture_release(directory)
    assert convert_main([str(source), str(directory / "converted"), "--model-size", "fixture",
                         "--model-config", str(directory / "model.yaml")]) == 0
    return directory / "converted"


def write_episodes(root: Path, episodes: int = 4, steps: int = 5) -> None:
    """Episodes whose arm x command and gripper are readable from the frame's brightness, recorded in the robot's
    units (arm x ±0.04 m, gripper 0 open, 1 closed); the last step terminates."""
    from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter

    rng = np.random.default_rng(0)
    writer = EpisodeWriter(root)
    for seed in range(episodes):
        levels = rng.integers(0, 3, size=steps)
        frames = np.zeros((steps, 40, 50, 3), np.uint8)
        frames[...] = (levels * 100)[:, None, None, None].astype(np.uint8)
        actions = np.zeros((steps, 11), np.float32)
        actions[:, 0] = (levels - 1) * 0.04
        actions[:, 6] = (levels == 2).astype(np.float32)
        actions[-1, 10] = 2
        writer.write(frames, actions, EpisodeInfo(instruction=INSTRUCTIONS[seed % 2], task_family="pick", seed=seed,
                                                  success=True, source="test", fps=3.0))


def write_embedding_map(path: Path, instructions) -> Path:
    """Stand-ins for Universal Sentence Encoder embeddings (512-d, unit length), one per instruction."""
    vectors = np.random.default_rng(1).normal(size=(len(instructions), 512)).astype(np.float32)
    np.savez(path, instructions=np.array(instructions), embeddings=vectors / np.linalg.norm(vectors, axis=1,
                                                                                            keepdims=True))
    return path


def overrides(converted: Path, data: Path, embeddings: Path) -> list[str]:
    return [f"data={data}", f"init_checkpoint={converted}", f"text_encoder=embeddings:{embeddings}",
            "segments_per_batch=2", "segment_length=2", "val_fraction=0.25", "warmup_steps=1", "time_budget_min=0",
            "log_every=5", "eval_every=1000", "checkpoint_every=1000", "learning_rate=0.001", "crop_scale_min=1.0",
            CROP_PADDING, "brightness=0", "contrast=0", "saturation=0", "mixed_precision=none", "num_threads=1"]


def test_a_dataset_instruction_missing_from_the_map_is_refused_by_name_before_training(converted, tmp_path):
    write_episodes(tmp_path / "data")
    embeddings = write_embedding_map(tmp_path / "use.npz", INSTRUCTIONS[:1])
    config = parse_overrides(TrainConfig(), overrides(converted, tmp_path / "data", embeddings))
    with pytest.raises(SystemExit, match="instruction 'move near the apple' is not in the precomputed embeddings"):
        Trainer(config, tmp_path / "run", progress=False, device="cpu")
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
    bundled = parse_overrides(config, ["text_encoder=bundled:all-MiniLM-L6-v2"])
    with pytest.raises(SystemExit, match="512-d instruction embeddings"):  # a 384-d encoder for a 512-d network
        Trainer(bundled, tmp_path / "run", progress=False, device="cpu")


def test_released_targets_are_every_step_of_whole_windows_in_the_releases_units(converted, tmp_path):
    """The converted checkpoint's tokenizer: truncating bins over its bounds (arm x ±1, 64 bins here); the robot's
    demonstrations mapped into its units by the calibration (arm x: 0.1 m per unit; the gripper's 0..1 onto -1..1),
    which the fine-tuned checkpoint keeps. Each window is 3 consecutive steps at the frame size the release takes,
    each step a target. A calibration that changes the ranges is refused, and so are an episode shorter than a
    window and history dropout (there is no padded history to drop)."""
    write_episodes(tmp_path / "data")
    embeddings = write_embedding_map(tmp_path / "use.npz", INSTRUCTIONS)
    space = to_mapping(RT1Policy.from_pretrained(converted).config.action_space)
    space["dimensions"][0]["scale"] = 0.1
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(space), encoding="utf-8")
    config = parse_overrides(TrainConfig(), overrides(converted, tmp_path / "data", embeddings)
                             + [f"action_space_file={tmp_path / 'robot.yaml'}"])
    trainer = Trainer(config, tmp_path / "run", progress=False, device="cpu")
    assert trainer.model.config.action_readout == "action_positions" and trainer.action_space.rounding == "truncate"
    assert trainer.action_space.dimensions[0].scale == 0.1 and trainer.action_space.dimensions[6].offset == 0.5
    episode = trainer.train_sampler.episodes[0]
    # Recorded ±0.04 m, 0: ±0.4 units: int((x + 1) / 2 · 63) = 18, 31, 44; rounding would give 19, 32, 44.
    arm_x = episode.tokens[:, 0].tolist()
    assert set(arm_x) <= {18, 31, 44} and {18, 31} & set(arm_x)
    np.testing.assert_array_equal(episode.tokens[:, 6], np.where(episode.tokens[:, 0] == 44, 63, 0))  # closed, open
    batch = trainer.train_sampler.sample(np.random.default_rng(3))
    assert batch.images.shape[2:] == FRAME_SIZE and batch.scored is None
    assert batch.windows.shape[1] == 3 and batch.targets.shape == (len(batch.windows), 3, 11)
    assert ((batch.windows[:, 1:] - batch.windows[:, :-1]) == 1).all()  # consecutive frames, never padded

    with pytest.raises(SystemExit, match="history_dropout"):
        Trainer(parse_overrides(config, ["history_dropout=0.1"]), tmp_path / "run3", progress=False, device="cpu")
    space["dimensions"][0]["high"] = 2.0
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(space), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"arm_x \[-1.0, 1.0\] vs arm_x \[-1.0, 2.0\]"):
        Trainer(config, tmp_path / "run2", progress=False, device="cpu")
    write_episodes(tmp_path / "short", steps=2)
    with pytest.raises(SystemExit, match="fewer than the 3 steps"):
        Trainer(parse_overrides(TrainConfig(), overrides(converted, tmp_path / "short", embeddings)),
                tmp_path / "run4", progress=False, device="cpu")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 20 training steps and an ONNX export: about a minute on one free core
def test_fine_tuning_lowers_the_loss_and_the_checkpoint_steps_alike_in_the_node_and_on_onnx(
        converted, tmp_path, monkeypatch):
    monkeypatch.setenv(onnx_export.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path / "onnx_cache"))
    write_episodes(tmp_path / "data")
    embeddings = write_embedding_map(tmp_path / "use.npz", INSTRUCTIONS)
    run = tmp_path / "run"
    config = parse_overrides(TrainConfig(), overrides(converted, tmp_path / "data", embeddings) + ["total_steps=20"])
    trainer = Trainer(config, run, progress=False, device="cpu")
    fixed = next(trainer.train_sampler.sequential(max_targets=64))

    def loss_on_fixed_batch() -> float:
        trainer.policy.eval()
        with torch.no_grad():
            return trainer.policy(trainer._to_device(fixed), loss=LossConfig())[0].item()

    before = loss_on_fixed_batch()
    result = trainer.run()
    after = loss_on_fixed_batch()
    print(f"fine-tuning loss on the training episodes: {before:.3f} -> {after:.3f}")
    assert result["step"] == 20 and after < before - 0.5, (before, after)

    # What the node loads: the checkpoint, its action space (the release's bounds, truncation and gripper mapping)
    # and the embedding map; its tokens are the fine-tuned policy's, step by step from an episode's first frame.
    from rt1_ros.model.text_encoder import shared_text_encoder

    encoder = shared_text_encoder(f"embeddings:{embeddings}", 512)
    reference = RT1Policy.from_pretrained(run / "latest", encoder.encode)  # eager torch, as trained
    assert reference.config.action_space == trainer.action_space
    camera = np.random.default_rng(2).integers(0, 256, size=(5, 120, 150, 3), dtype=np.uint8)
    camera[:, :60] = 200  # part of each frame bright, part random: frames the training set never showed
    # Not vacuous: the fine-tuned network's logits depend on the frame.
    from rt1_ros.inference.image_decoding import resize_for_model
    from rt1_ros.inference.parity import input_dependence
    from rt1_ros.model.rt1 import images_to_tensor

    frames = images_to_tensor(np.stack([resize_for_model(frame, reference.frame_size) for frame in camera]))
    conditioning = reference.model.embed_instruction(encoder.encode([INSTRUCTIONS[1]])).detach()
    assert input_dependence(reference.model, frames, conditioning) > 1e-2
    reference.set_instruction(INSTRUCTIONS[1])
    expected = [step_logits(reference, frame) for frame in camera]  # [(tokens (11,), logits (11,bins))]
    # Not vacuous: the logits the backends must reproduce change along the episode far beyond the tolerance (the
    # tokens of a 20-step fine-tune may not: their argmax can sit in one bin for every frame on one CPU and not on
    # another, so they are compared where the reference's own margin decides them).
    drift = max(float((logits - expected[0][1]).abs().max()) for _, logits in expected[1:])
    print(f"largest logit change along the episode: {drift:.3f}")
    assert drift > 100 * LOGIT_TOLERANCE, drift
    moved = trainer.model.state_dict()
    for backend in ("auto", "onnxruntime"):
        source = PolicySource(checkpoint=str(run / "latest"), device="cpu", text_encoder=f"embeddings:{embeddings}",
                              inference=InferenceOptions(backend=backend))
        loaded = load_policy(source)
        if backend == "onnxruntime":
            assert type(loaded.policy.inference_path).__name__ == "OnnxRuntimePath"
        assert loaded.trained and loaded.action_space.dimensions[6].scale == 0.5
        loaded.policy.set_instruction(INSTRUCTIONS[1])
        for step, frame in enumerate(camera):
            tokens, logits = step_logits(loaded.policy, frame)
            want_tokens, want_logits = expected[step]
            torch.testing.assert_close(logits, want_logits, atol=LOGIT_TOLERANCE, rtol=0,
                                       msg=lambda text, where=f"{backend} step {step}": f"{where}: {text}")
            top2 = want_logits.topk(2, dim=-1).values
            top2[-1] = want_logits[-1, :reference.num_modes].topk(2).values  # the mode: over its valid classes
            decided = (top2[:, 0] - top2[:, 1] > 2 * LOGIT_TOLERANCE).numpy()
            np.testing.assert_array_equal(tokens[decided], want_tokens[decided], err_msg=f"{backend} step {step}")
    # Not vacuous: fine-tuning changed the converted weights.
    original = RT1Policy.from_pretrained(converted).model.state_dict()
    assert any(not torch.equal(original[key], value) for key, value in moved.items())
