import dataclasses

import numpy as np
import pytest
import torch

from rt1_ros.model.action_tokenizer import MODE_DIM, ActionSpaceConfig, ActionTokenizer, tokens_from_logits


def random_actions(action_space, rng, n):
    cont = rng.uniform(action_space.low, action_space.high, size=(n, 10))
    mode = rng.integers(0, 3, size=(n, 1))
    return np.concatenate([cont, mode], axis=1)


def test_round_trip_within_half_a_bin(tokenizer, action_space):
    actions = random_actions(action_space, np.random.default_rng(0), 1000)
    decoded = tokenizer.decode(tokenizer.encode(actions))
    error = np.abs(decoded[:, :10] - actions[:, :10])
    assert np.all(error <= tokenizer.bin_width() / 2 + 1e-12)
    np.testing.assert_array_equal(decoded[:, MODE_DIM], actions[:, MODE_DIM])


def test_bounds_hit_exactly_and_zero_round_trips(tokenizer, action_space):
    low = np.append(action_space.low, 0)
    high = np.append(action_space.high, 2)
    assert np.all(tokenizer.encode(low)[:10] == 0)
    assert np.all(tokenizer.encode(high)[:10] == 255)
    np.testing.assert_array_equal(tokenizer.decode(tokenizer.encode(low)), low)
    np.testing.assert_array_equal(tokenizer.decode(tokenizer.encode(high)), high)
    zero = np.zeros(11)
    symmetric = action_space.low == -action_space.high
    decoded = tokenizer.decode(tokenizer.encode(zero))
    # 255 bins over a symmetric range put zero half-way between two bins: within half a bin, not exactly.
    assert np.all(np.abs(decoded[:10][symmetric]) <= tokenizer.bin_width()[symmetric] / 2 + 1e-12)


def test_out_of_range_values_clip_and_mode_stays_valid(tokenizer, action_space):
    wild = np.concatenate([action_space.high * 10, [7.0]])
    tokens = tokenizer.encode(wild)
    assert np.all(tokens[:10] == 255) and tokens[MODE_DIM] == 2
    tokens = tokenizer.encode(np.concatenate([action_space.low * 10 - 1, [-3.0]]))
    assert np.all(tokens[:10] == 0) and tokens[MODE_DIM] == 0
    assert set(tokenizer.decode(np.full(11, 200))[MODE_DIM:].tolist()) <= {0.0, 1.0, 2.0}


def test_numpy_and_torch_agree(tokenizer, action_space):
    actions = random_actions(action_space, np.random.default_rng(1), 64)
    np.testing.assert_array_equal(tokenizer.encode(torch.from_numpy(actions)).numpy(), tokenizer.encode(actions))
    tokens = tokenizer.encode(actions)
    np.testing.assert_allclose(tokenizer.decode(torch.from_numpy(tokens)).numpy(), tokenizer.decode(tokens))


def test_mode_decodes_by_argmax_over_its_three_classes_only(tokenizer):
    logits = torch.zeros(2, 11, 256)
    logits[:, MODE_DIM, 200] = 100.0  # a high logit outside the valid classes must be ignored
    logits[0, MODE_DIM, 1] = 1.0
    logits[1, MODE_DIM, 2] = 1.0
    tokens = tokenizer.tokens_from_logits(logits)
    assert tokens[:, MODE_DIM].tolist() == [1, 2]


def test_the_method_and_the_module_function_are_one_rule(tokenizer):
    logits = torch.randn(4, 3, 11, 256, generator=torch.Generator().manual_seed(0))
    logits[..., MODE_DIM, 3:] += 10.0  # invalid mode bins above every valid one
    tokens = tokens_from_logits(logits, tokenizer.num_modes)
    assert tokens.shape == (4, 3, 11)
    assert torch.equal(tokens, tokenizer.tokens_from_logits(logits))
    assert torch.equal(tokens[..., :MODE_DIM], logits[..., :MODE_DIM, :].argmax(dim=-1))
    assert torch.equal(tokens[..., MODE_DIM], logits[..., MODE_DIM, :3].argmax(dim=-1))


def test_ranges_come_from_yaml(tmp_path):
    path = tmp_path / "space.yaml"
    dims = "\n".join(f"  - {{name: d{i}, low: -{i + 1}, high: {i + 1}}}" for i in range(10))
    path.write_text(f"dimensions:\n{dims}\n")
    space = ActionSpaceConfig.from_yaml(path)
    assert space.high[9] == 10.0 and space.mode_classes == ("arm", "base", "terminate")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dimensions:\n  - {name: x, low: 1, high: -1}\n")
    with pytest.raises(ValueError):
        ActionSpaceConfig.from_yaml(bad)


def test_truncating_tokenizer_is_the_released_int_of_the_scaled_value(action_space):
    truncating = ActionTokenizer(dataclasses.replace(action_space, rounding="truncate"))
    rounding = ActionTokenizer(action_space)
    low, high = action_space.low, action_space.high
    # 0.7 of a bin above bin 100 (and the bounds): int() keeps 100 where rounding gives 101.
    values = low + (100.7 / 255) * (high - low)
    actions = np.concatenate([values, [1.0]])[None]
    assert (truncating.encode(actions)[0, :10] == 100).all()
    assert (rounding.encode(actions)[0, :10] == 101).all()
    torch_bins = truncating.encode(torch.from_numpy(actions))
    assert (torch_bins.numpy() == truncating.encode(actions)).all()
    edges = np.stack([np.concatenate([low, [0]]), np.concatenate([high, [0]])])
    assert (truncating.encode(edges)[:, :10] == [[0], [255]]).all()
    scaled = [int((v - lo) / (hi - lo) * 255) for v, lo, hi in zip(low + 0.3 * (high - low), low, high)]
    assert list(truncating.encode(np.concatenate([low + 0.3 * (high - low), [0]])[None])[0, :10]) == scaled


def test_unknown_rounding_is_refused(action_space):
    with pytest.raises(ValueError, match="rounding"):
        dataclasses.replace(action_space, rounding="nearest")
