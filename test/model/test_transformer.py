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
