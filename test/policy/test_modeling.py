"""RT1Policy: the cached control step equals the full-window recompute, forward's shared frame encoding equals the
per-window forward, checkpoints round-trip, and training never leaves a stale inference copy behind."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from rt1_ros.model.rt1 import images_to_tensor
from rt1_ros.policy import RT1Policy, RT1PolicyConfig, resolve_device
from rt1_ros.inference import onnx_export
from rt1_ros.policy.control_policy import ControlPolicy
from rt1_ros.inference.frame_history import pad_window_indices
from rt1_ros.inference.options import InferenceOptions
from rt1_ros.inference.parity import input_dependence


def wrap(model, action_space, embed_text, options: InferenceOptions | None = None) -> RT1Policy:
    policy = RT1Policy(RT1PolicyConfig(model=model.config, action_space=action_space), embed_text, model=model)
    policy.prepare_inference("cpu", options)
    return policy


def test_policy_steps_match_full_window_recompute(trained_model, action_space, tokenizer):
    torch.manual_seed(0)
    embeddings = {"pick up the red cube": torch.randn(384)}
    policy = wrap(trained_model, action_space, embeddings.__getitem__)
    assert isinstance(policy, ControlPolicy)
    policy.set_instruction("pick up the red cube")
    rng = np.random.default_rng(0)
    size = trained_model.config.image_size
    frames = rng.integers(0, 256, size=(8, size, size, 3), dtype=np.uint8)
    # Not vacuous: this model's output depends on the frame.
    conditioning = trained_model.embed_instruction(embeddings["pick up the red cube"][None]).detach()
    assert input_dependence(trained_model, images_to_tensor(frames), conditioning) > 1e-2
    for step in range(len(frames)):
        result = policy.select_action(frames[step])
        window = images_to_tensor(frames[pad_window_indices(step, 6)]).unsqueeze(0)
        with torch.no_grad():
            expected = tokenizer.tokens_from_logits(trained_model(window, embeddings["pick up the red cube"][None]))
        np.testing.assert_array_equal(result.tokens, expected[0].numpy())
        assert result.inference_ms > 0
        assert set(np.unique(result.action[10])) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_official_policy_steps_as_the_release_does(small_official_model, action_space, tokenizer, backend,
                                                   tmp_path, monkeypatch):
    """The released RT-1's control step: each camera frame resized to the size it was trained on (256×320; here
    the small variant's 48×64), and its first steps read a window of the frames so far, not one padded to T
    frames; from step T on, the last T. On the eager path and on an exported one (its graph has a fixed window:
    the short first windows run on its torch copy)."""
    monkeypatch.setenv(onnx_export.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path))
    model, config = small_official_model, small_official_model.config
    assert config.frame_size == (48, 64) and config.image_size == 60
    text = torch.randn(config.text_embedding_dim, generator=torch.Generator().manual_seed(2))
    policy = wrap(model, action_space, lambda instruction: text, InferenceOptions(backend=backend))
    assert type(policy.inference_path).__name__ == ("TorchPath" if backend == "torch" else "OnnxRuntimePath")
    policy.set_instruction("pick up the can")
    camera = np.random.default_rng(1).integers(0, 256, size=(config.num_frames + 2, 120, 160, 3), dtype=np.uint8)
    frames = images_to_tensor(np.stack([cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA) for f in camera]))
    steps = len(camera)
    with torch.no_grad():
        released = [model(frames[None, max(0, s + 1 - config.num_frames):s + 1], text[None]) for s in range(steps)]
        padded = [model(frames[None, pad_window_indices(s, config.num_frames)], text[None]) for s in range(steps)]
    # Not vacuous: padding the first windows gives other logits.
    assert max((p - r).abs().max().item() for p, r in zip(padded, released)) > 1e-2
    encode, fed = policy.inference_path.encode_frame, []
    policy.inference_path.encode_frame = lambda frame, conditioning: fed.append(frame.shape) or encode(frame,
                                                                                                      conditioning)
    decode, decoded = policy.tokenizer.tokens_from_logits, []
    policy.tokenizer.tokens_from_logits = lambda logits: decoded.append(logits) or decode(logits)
    for step in range(steps):
        result = policy.select_action(camera[step])
        torch.testing.assert_close(decoded[-1], released[step], rtol=0, atol=1e-4)
        np.testing.assert_array_equal(result.tokens, decode(released[step])[0].numpy())
    assert fed == [(1, 3, 48, 64)] * steps  # the network resizes to image_size (60) itself, as the release does
    assert len(policy.history) == config.num_frames


def test_new_instruction_clears_history(tiny_model, action_space):
    policy = wrap(tiny_model, action_space, lambda text: torch.ones(384) * len(text))
    policy.set_instruction("a")
    policy.select_action(np.zeros((96, 96, 3), np.uint8))
    policy.select_action(np.zeros((96, 96, 3), np.uint8))
    assert len(policy.history) == 2
    policy.set_instruction("bb")
    assert len(policy.history) == 0


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_non_finite_logits_are_refused_not_decoded(tiny_model, action_space):
    with torch.no_grad():
        tiny_model.action_head.heads[3].bias.fill_(float("nan"))
    policy = wrap(tiny_model, action_space, lambda text: torch.zeros(384))
    policy.set_instruction("go")
    with pytest.raises(FloatingPointError):
        policy.select_action(np.zeros((96, 96, 3), np.uint8))


def test_forward_encodes_each_frame_once_and_equals_the_per_window_forward(tiny_config, action_space):
    torch.manual_seed(0)
    policy = RT1Policy(RT1PolicyConfig(model=tiny_config, action_space=action_space)).eval()
    images = torch.rand(8, 3, 96, 96)
    text = torch.randn(1, 384).expand(8, 384)  # one run: one instruction
    windows = torch.tensor([pad_window_indices(i, 6) for i in range(8)])  # (8,6)
    targets = torch.randint(0, 3, (8, 11))
    with torch.no_grad():
        loss, outputs = policy({"images": images, "frame_text": text, "windows": windows, "targets": targets})
        direct = policy.model(images[windows], text)  # (8,6,3,96,96): every window encoded from scratch
    torch.testing.assert_close(outputs["logits"], direct, atol=1e-4, rtol=1e-4)
    assert outputs["tokens"].shape == (8, 11) and loss.shape == ()
    assert not {"auxiliary_loss", "target_cell_loss"} & set(outputs)  # the training-only heads are the trainer's
    torch.testing.assert_close(loss, outputs["per_dim"].mean())


def test_save_and_load_pretrained_round_trip_the_weights(tiny_config, action_space, tmp_path):
    torch.manual_seed(0)
    policy = RT1Policy(RT1PolicyConfig(model=tiny_config, action_space=action_space))
    policy.save_pretrained(tmp_path / "ckpt", extra={"step": 7})
    loaded = RT1Policy.from_pretrained(tmp_path / "ckpt", lambda text: torch.zeros(384))
    assert loaded.checkpoint_extra["step"] == 7 and loaded.config.action_space == action_space
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in policy.model.state_dict().items())
    assert not loaded.training


def test_training_drops_the_prepared_inference_copy(trained_model, action_space):
    """The fast path runs a batch-norm-folded copy; after weights change in train mode, select_action must see
    them, not the stale copy."""
    import copy

    model = copy.deepcopy(trained_model)
    policy = wrap(model, action_space, lambda text: torch.ones(384), options=InferenceOptions())
    assert policy.inference_path.model is not policy.model
    policy.set_instruction("go")
    frame = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    before = policy.select_action(frame).tokens
    policy.train()
    with torch.no_grad():
        policy.model.action_head.heads[0].bias.add_(torch.linspace(-50.0, 50.0, 256))  # favour high bins
    policy.eval()
    after = policy.select_action(frame).tokens
    assert policy.instruction == "go" and after[0] != before[0] and after[0] > 200


def test_attention_maps_follow_the_instruction(trained_model, action_space):
    torch.manual_seed(0)
    embeddings = {"pick up the red cube": torch.randn(384), "push the blue cube left": torch.randn(384)}
    policy = wrap(trained_model, action_space, embeddings.__getitem__)
    frame = np.random.default_rng(3).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    maps = {}
    for text in embeddings:
        policy.set_instruction(text)
        maps[text] = policy.attention_maps(frame)
    red, blue = maps.values()
    assert red.shape[0] == 8 and red.shape[1] == red.shape[2] and np.allclose(red.sum(axis=(1, 2)), 1.0, atol=1e-4)
    assert np.abs(red - blue).max() > 1e-4  # FiLM conditions the encoder, so where tokens read depends on the task


def test_official_forward_trains_every_frame_as_each_control_step_runs(small_official_model, action_space):
    """The released layout's training: frame t of a window is supervised with the logits a control step computes
    from the window's frames up to t (an episode's first steps read the frames so far); the loss is the
    cross-entropy over all bins, the mode row's too (the release trains every position alike), averaged over frames
    and dimensions; `scored` keeps the marked frames only."""
    import torch.nn.functional as F

    model, config = small_official_model, small_official_model.config
    policy = RT1Policy(RT1PolicyConfig(model=config, action_space=action_space), model=model).eval()
    generator = torch.Generator().manual_seed(3)
    height, width = config.frame_size
    images = torch.rand(4, 3, height, width, generator=generator)  # (F,3,h,w): one run of 4 frames
    text = torch.randn(1, config.text_embedding_dim, generator=generator).expand(4, -1)
    windows = torch.tensor([[0, 1, 2], [1, 2, 3]])
    targets = torch.randint(0, 3, (2, 3, 11), generator=generator)
    with torch.no_grad():
        loss, outputs = policy({"images": images, "frame_text": text, "windows": windows, "targets": targets})
        steps = torch.stack([torch.stack([model(images[None, w[:t + 1]], text[:1])[0] for t in range(3)])
                             for w in windows.tolist()])  # (2,3,11,bins): each frame as its control step sees it
        scored = torch.tensor([[True, True, True], [False, False, True]])
        newest, newest_outputs = policy({"images": images, "frame_text": text, "windows": windows,
                                         "targets": targets, "scored": scored})
    torch.testing.assert_close(outputs["logits"], steps.flatten(0, 1), rtol=0, atol=1e-5)
    expected = F.cross_entropy(steps.flatten(0, 2), targets.flatten())  # over all 256 bins, every row alike
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert outputs["tokens"].shape == (6, 11) and outputs["rows"].tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(outputs["targets"], targets.flatten(0, 1))
    torch.testing.assert_close(newest, F.cross_entropy(steps[scored].flatten(0, 1), targets[scored].flatten()),
                               rtol=1e-5, atol=1e-6)
    assert newest_outputs["rows"].tolist() == [0, 0, 0, 1]
    # The state feature is the newest frame's last image token, before the first action position.
    assert outputs["features"].shape == (2, model.transformer.width)
