"""TokenLearner: compress a frame's spatial tokens into a few learned ones (Ryoo et al., 2021).

    tokens (B,N,D) ─ LayerNorm ─ MLP D→hidden→K ─ (B,N,K) ─ normalise over N ─ weights (B,K,N)
    weights @ tokens ─ (B,K,D)

Normalisation "sigmoid" (the default here; docs/model.md lists it among the deliberate differences from the
official RT-1): each weight in (0,1), divided by the sum over the N positions, so every learned token is a convex
combination of positions that keeps the MLP's relative preferences. "softmax" is the official RT-1's choice (Brohan
et al. 2022, "RT-1: Robotics Transformer for Real-World Control at Scale"), kept as an option so official checkpoints
stay convertible.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

NORMALISATIONS = ("sigmoid", "softmax")
GELU_APPROXIMATIONS = ("none", "tanh")


@dataclass(frozen=True)
class TokenLearnerConfig:
    num_tokens: int = 8
    hidden_dim: int = 64
    normalisation: str = "sigmoid"
    # The released RT-1's TokenLearner: LayerNorm epsilon 1e-6 and the tanh approximation of GELU.
    layer_norm_eps: float = 1e-5
    gelu_approximation: str = "none"

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"token_learner.normalisation must be one of {NORMALISATIONS}")
        if self.gelu_approximation not in GELU_APPROXIMATIONS:
            raise ValueError(f"token_learner.gelu_approximation must be one of {GELU_APPROXIMATIONS}")


class TokenLearner(nn.Module):
    def __init__(self, embed_dim: int, config: TokenLearnerConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, config.hidden_dim),
            nn.GELU(approximate=config.gelu_approximation),
            nn.Linear(config.hidden_dim, config.num_tokens),
        )

    def attention_weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B,N,D) -> (B,K,N), each row summing to 1 over the N positions."""
        scores = self.mlp(self.norm(tokens)).transpose(1, 2)  # (B,K,N)
        if self.config.normalisation == "softmax":
            return scores.softmax(dim=-1)
        weights = torch.sigmoid(scores)
        return weights / weights.sum(dim=-1, keepdim=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.attention_weights(tokens), tokens)  # (B,K,D)
