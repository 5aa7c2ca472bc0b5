import numpy as np
import pytest
import torch

from rt1_ros.model.rt1 import RT1, count_parameters
from rt1_ros.inference.frame_history import FrameTokenHistory, pad_window_indices
from rt1_ros.inference.parity import input_dependence


def test_paper_config_size_and_forward_shape(paper_config):
    torch.manual_seed(0)
    model = RT1(paper_config).eval()
    count = count_parameters(model)
    print(f"paper RT-1 parameters (text encoder excluded): {count:,}")
    assert 30e6 <= count <= 40e6
    with torch.no_grad():
        logits = model(torch.rand(1, 6, 3, 300, 300), torch.randn(1, 384))
    assert logits.shape == (1, 11, 256)
    assert torch.isfinite(logits).all()


def test_tiny_forward_shape_and_batch_independence(tiny_model):
    images = torch.rand(3, 6, 3, 96, 96)
    text = torch.randn(3, 384)
    with torch.no_grad():
        batch = tiny_model(images, text)
        single = tiny_model(images[1:2], text[1:2])
    assert batch.shape == (3, 11, 256)
    torch.testing.assert_close(batch[1:2], single, rtol=1e-5, atol=1e-5)


def test_token_cache_gives_the_full_forward_logits_at_every_step(trained_model):
    model, size, frames = trained_model, trained_model.config.image_size, trained_model.config.num_frames
    torch.manual_seed(2)
    episode = torch.rand(9, 3, size, size)  # more frames than the window, so the cache also rolls over
    text = torch.randn(1, 384)
    history = FrameTokenHistory(frames)
    with torch.no_grad():
        instruction = model.embed_instruction(text)
        # Not vacuous: the logits move with the frames by far more than the tolerance below.
        assert input_dependence(model, episode, instruction) > 1e-2
        # The tolerance: the cached path convolves one frame at a time, the full path six at once, and oneDNN sums
        # those in a different order; on the shipped model's logits that differs by ~1e-5.
        for step in range(len(episode)):
            history.push(model.encode_frame(episode[step:step + 1], instruction)[0])
            cached = model.logits_from_frame_tokens(history.window())
            window = episode[pad_window_indices(step, frames)].unsqueeze(0)
            full = model(window, text)
            torch.testing.assert_close(cached, full, rtol=0, atol=1e-4)
            assert torch.equal(cached.argmax(-1), full.argmax(-1))


def test_pad_window_repeats_the_first_frame():
    assert pad_window_indices(0, 6) == [0] * 6
    assert pad_window_indices(2, 6) == [0, 0, 0, 0, 1, 2]
    assert pad_window_indices(8, 6) == [3, 4, 5, 6, 7, 8]


def test_training_mode_differs_but_eval_is_deterministic(tiny_model):
    images, text = torch.rand(1, 6, 3, 96, 96), torch.randn(1, 384)
    with torch.no_grad():
        a = tiny_model(images, text)
        b = tiny_model(images, text)
    assert torch.equal(a, b)
    assert np.isfinite(a.numpy()).all()


def test_config_yaml_rejects_unknown_keys(tmp_path):
    from rt1_ros.model.rt1 import RT1Config
    from rt1_ros.configuration.yaml_config import ConfigError

    path = tmp_path / "model.yaml"
    path.write_text("custom:\n  image_size: 64\n  embed_dimension: 12\n")
    with pytest.raises(ConfigError, match="embed_dimension"):
        RT1Config.from_yaml("custom", path)


def test_token_attention_is_what_the_token_learner_pools_with(trained_model):
    """The maps the demo draws are the weights that make each frame token: pooling the spatial tokens with them
    gives encode_frame's output, and each map sums to 1."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 128, 128)
    instruction = trained_model.embed_instruction(torch.randn(2, 384))
    with torch.no_grad():
        maps = trained_model.token_attention(images, instruction)  # (2,K,g,g)
        spatial = trained_model.image_encoder(images, instruction)  # (2,g²,D)
        tokens = trained_model.encode_frame(images, instruction)
    assert maps.shape[:2] == (2, 8) and maps.shape[2] == maps.shape[3] == round(spatial.shape[1] ** 0.5)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(2, 8))
    torch.testing.assert_close(torch.bmm(maps.flatten(2), spatial), tokens, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(maps[0], maps[1], atol=1e-4)  # the frame decides where the tokens read


def test_official_logits_are_read_at_the_released_action_positions(small_official_model):
    """Logits of released dimension k at frame t come from position -1 + K + t·(K+11) + k of the sequence
    [K image tokens, 11 zero inputs] per frame, through one shared Linear; rows and mode classes come out in
    action_layout's order (readout_order, mode_class_order)."""
    model, config = small_official_model, small_official_model.config
    torch.manual_seed(4)
    tokens = torch.randn(1, config.num_frames, config.tokens_per_frame, config.embed_dim)
    with torch.no_grad():
        logits = model.logits_from_frame_tokens(tokens)
        per_frame = config.tokens_per_frame + 11
        sequence = torch.zeros(1, config.num_frames * per_frame, config.embed_dim)
        for t in range(config.num_frames):
            sequence[0, t * per_frame:t * per_frame + config.tokens_per_frame] = tokens[0, t]
        outputs = model.transformer(sequence)
        last = config.num_frames - 1
        released = model.action_head.heads[0](outputs[0, [-1 + config.tokens_per_frame + last * per_frame + k
                                                          for k in range(11)]])  # (11,bins), released order
    assert config.readout_order == (1, 2, 3, 4, 5, 6, 7, 9, 10, 8, 0) and config.mode_class_order == (1, 2, 0)
    torch.testing.assert_close(logits[0, :10], released[[1, 2, 3, 4, 5, 6, 7, 9, 10, 8]])
    torch.testing.assert_close(logits[0, 10, :3], released[0, [1, 2, 0]])  # arm, base, terminate
    torch.testing.assert_close(logits[0, 10, 3:], released[0, 3:])
    assert not torch.allclose(logits[0, 0], logits[0, 1])


def test_official_cached_steps_give_the_full_window_logits(small_official_model):
    """The model's cached path (encode_frame per step, logits over the cached tokens) against forward over the same
    frames, from the first step (a window of the frames so far, as the released policy reads it) to past a full
    window. (The policy's step on top of it: test/policy/test_modeling.py.)"""
    model, config = small_official_model, small_official_model.config
    generator = torch.Generator().manual_seed(6)
    height, width = config.frame_size
    episode = torch.rand(config.num_frames + 2, 3, height, width, generator=generator)
    text = torch.randn(1, config.text_embedding_dim, generator=generator)
    with torch.no_grad():
        instruction = model.embed_instruction(text)
        first = model(episode[None, :1], text)
        moved = max((model(episode[None, i:i + 1], text) - first).abs().max().item() for i in range(len(episode)))
        assert moved > 1e-2  # the frames move the logits far beyond the tolerance below
        cached = []
        for step in range(len(episode)):
            cached.append(model.encode_frame(episode[step:step + 1], instruction)[0])
            window = torch.stack(cached[-config.num_frames:])[None]  # (1,T',K,D), T' ≤ num_frames
            start = max(0, step + 1 - config.num_frames)
            full = model(episode[None, start:step + 1], text)
            torch.testing.assert_close(model.logits_from_frame_tokens(window), full, rtol=0, atol=1e-5)
