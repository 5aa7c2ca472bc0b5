import numpy as np
import torch

from rt1_ros.runtime.frame_history import pad_window_indices
from rt1_ros.runtime.inference_optimisation import input_dependence
from rt1_ros.runtime.policy import Policy, images_to_tensor, resolve_device


def test_policy_steps_match_full_window_recompute(trained_model, tokenizer):
    torch.manual_seed(0)
    embeddings = {"pick up the red cube": torch.randn(384)}
    policy = Policy(trained_model, tokenizer, embeddings.__getitem__, torch.device("cpu"))
    policy.set_instruction("pick up the red cube")
    rng = np.random.default_rng(0)
    size = trained_model.config.image_size
    frames = rng.integers(0, 256, size=(8, size, size, 3), dtype=np.uint8)
    # Not vacuous: this model's output depends on the frame.
    conditioning = trained_model.embed_instruction(embeddings["pick up the red cube"][None]).detach()
    assert input_dependence(trained_model, images_to_tensor(frames), conditioning) > 1e-2
    for step in range(len(frames)):
        result = policy.step(frames[step])
        window = images_to_tensor(frames[pad_window_indices(step, 6)]).unsqueeze(0)
        with torch.no_grad():
            expected = tokenizer.tokens_from_logits(trained_model(window, embeddings["pick up the red cube"][None]))
        np.testing.assert_array_equal(result.tokens, expected[0].numpy())
        assert result.inference_ms > 0
        assert set(np.unique(result.action[10])) <= {0.0, 1.0, 2.0}


def test_new_instruction_clears_history(tiny_model, tokenizer):
    policy = Policy(tiny_model, tokenizer, lambda text: torch.ones(384) * len(text), torch.device("cpu"))
    policy.set_instruction("a")
    policy.step(np.zeros((96, 96, 3), np.uint8))
    policy.step(np.zeros((96, 96, 3), np.uint8))
    assert len(policy.history) == 2
    policy.set_instruction("bb")
    assert len(policy.history) == 0


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_non_finite_logits_are_refused_not_decoded(tiny_model, tokenizer):
    import pytest

    with torch.no_grad():
        tiny_model.action_head.heads[3].bias.fill_(float("nan"))
    policy = Policy(tiny_model, tokenizer, lambda text: torch.zeros(384), torch.device("cpu"))
    policy.set_instruction("go")
    with pytest.raises(FloatingPointError):
        policy.step(np.zeros((96, 96, 3), np.uint8))
