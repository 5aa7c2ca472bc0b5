import pytest
import torch

from rt1_ros.model.token_learner import TokenLearner, TokenLearnerConfig


@pytest.mark.parametrize("normalisation", ["sigmoid", "softmax"])
def test_81_tokens_become_8_convex_combinations(normalisation):
    torch.manual_seed(0)
    learner = TokenLearner(512, TokenLearnerConfig(num_tokens=8, hidden_dim=64, normalisation=normalisation))
    tokens = torch.randn(3, 81, 512)
    weights = learner.attention_weights(tokens)
    assert weights.shape == (3, 8, 81)
    assert torch.all(weights > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 8))
    assert learner(tokens).shape == (3, 8, 512)


def test_constant_tokens_pass_through_unchanged():
    learner = TokenLearner(16, TokenLearnerConfig(num_tokens=4, hidden_dim=8))
    tokens = torch.randn(1, 1, 16).expand(2, 81, 16)
    torch.testing.assert_close(learner(tokens), tokens[:, :4])


def test_unknown_normalisation_is_rejected():
    with pytest.raises(ValueError):
        TokenLearnerConfig(normalisation="relu")
