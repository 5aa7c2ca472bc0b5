import dataclasses

import pytest
import torch

from rt1_ros.model.rt1 import RT1
from rt1_ros.model.transformer import attention_mask


@pytest.mark.parametrize("frame", [1, 3, 5])
def test_changing_a_frame_changes_nothing_before_it(tiny_model, tiny_config, frame):
    torch.manual_seed(1)
    images = torch.rand(1, 6, 3, 96, 96)
    text = torch.randn(1, 384)
    changed = images.clone()
    changed[:, frame] = torch.rand(3, 96, 96)
    with torch.no_grad():
        before = tiny_model.sequence_outputs(images, text)
        after = tiny_model.sequence_outputs(changed, text)
    first_token = frame * tiny_config.tokens_per_frame
    torch.testing.assert_close(before[:, :first_token], after[:, :first_token], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, first_token:], after[:, first_token:])


def test_causal_mask_is_lower_triangular():
    mask = attention_mask("causal", 2, 3)
    assert torch.equal(mask, torch.tril(torch.ones(6, 6, dtype=torch.bool)))


def test_block_causal_mask_is_bidirectional_inside_a_frame_only():
    mask = attention_mask("block_causal", 3, 2)
    assert mask[0, 1] and mask[1, 0]  # same frame, both ways
    assert mask[2, 0] and not mask[0, 2]  # frame 1 sees frame 0, not the reverse


def test_block_causal_model_is_still_causal_across_frames(tiny_config):
    config = dataclasses.replace(tiny_config, transformer=dataclasses.replace(tiny_config.transformer,
                                                                              mask="block_causal"))
    torch.manual_seed(0)
    model = RT1(config).eval()
    images = torch.rand(1, 6, 3, 96, 96)
    changed = images.clone()
    changed[:, 4] = 0
    text = torch.randn(1, 384)
    with torch.no_grad():
        a, b = model.sequence_outputs(images, text), model.sequence_outputs(changed, text)
    torch.testing.assert_close(a[:, :32], b[:, :32], rtol=0, atol=1e-6)


def test_action_blind_mask_is_the_released_band_part_minus_the_action_block():
    """transformer_network.py's rule, written out: causal, minus (for action positions i, j) every j of an earlier
    frame and every j ≤ i of the same frame; 2 frames of 3 image and 2 action positions."""
    images, actions, frames = 3, 2, 2
    per_frame = images + actions
    length = frames * per_frame

    def action_index(k: int) -> int:
        return -1 if k % per_frame < images else k // per_frame

    expected = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(i + 1):
            a_i, a_j = action_index(i), action_index(j)
            blocked = a_i != -1 and a_j != -1 and (a_j < a_i or (a_j == a_i and j <= i))
            expected[i, j] = not blocked
    mask = attention_mask("causal_action_blind", frames, per_frame, actions)
    assert torch.equal(mask, expected)
    assert not mask[3, 3] and mask[3, 2] and mask[8, 5] and not mask[8, 4]  # an action sees images, no action
    assert torch.equal(attention_mask("causal_action_blind", 1, per_frame, actions), mask[:per_frame, :per_frame])


def test_only_the_released_layout_takes_a_window_of_fewer_frames(tiny_model):
    """The project's sizes always get a full window (the node pads it); a short one is a caller's bug, refused."""
    transformer = tiny_model.transformer
    per_frame = transformer.tokens_per_frame
    with pytest.raises(ValueError, match="expected"):
        transformer(torch.zeros(1, per_frame, transformer.width))
    released = type(transformer)(transformer.width, 6, per_frame + 2, transformer.config, action_tokens=2)
    assert released(torch.zeros(1, per_frame + 2, transformer.width)).shape == (1, per_frame + 2, transformer.width)
