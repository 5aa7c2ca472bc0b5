"""Decoder-only transformer over the frame tokens: self-attention under a causal mask, pre-LayerNorm.

    tokens (B,T·K,D) + learned positions (T·K,D) ─ L × [x + Attn(LN(x)); x + FFN(LN(x))] ─ LN ─ (B,T·K,D)

A decoder-only model is self-attention with a mask (no cross-attention). Masks:
- "causal": token i attends to tokens j ≤ i (the default; README "The model");
- "block_causal": bidirectional inside a frame, causal across frames (token i attends to j when frame(j) ≤ frame(i)).
Either way nothing at a position depends on later frames, which is what makes per-frame caching and training on
windows consistent.

Feed-forward "mlp" is D→ffn_dim→D with GELU (the default; README "The model"); "dense" is the official RT-1's single
Dense(D) layer (Brohan et al. 2022, "RT-1: Robotics Transformer for Real-World Control at Scale").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MASKS = ("causal", "block_causal")
FEED_FORWARDS = ("mlp", "dense")


@dataclass(frozen=True)
class TransformerConfig:
    num_layers: int = 8
    num_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.1
    mask: str = "causal"
    feed_forward: str = "mlp"

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ValueError(f"transformer.mask must be one of {MASKS}")
        if self.feed_forward not in FEED_FORWARDS:
            raise ValueError(f"transformer.feed_forward must be one of {FEED_FORWARDS}")


def attention_mask(kind: str, num_frames: int, tokens_per_frame: int, device=None) -> torch.Tensor:
    """(S,S) boolean, True where attention is allowed; S = num_frames × tokens_per_frame."""
    length = num_frames * tokens_per_frame
    position = torch.arange(length, device=device)
    if kind == "causal":
        return position[None, :] <= position[:, None]
    frame = position // tokens_per_frame
    return frame[None, :] <= frame[:, None]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B,heads,S,head_dim)
        attended = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).reshape(batch, length, dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, config: TransformerConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, config.num_heads, config.dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        if config.feed_forward == "mlp":
            self.ffn = nn.Sequential(nn.Linear(dim, config.ffn_dim), nn.GELU(), nn.Linear(config.ffn_dim, dim))
        else:
            self.ffn = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class CausalTransformer(nn.Module):
    def __init__(self, dim: int, num_frames: int, tokens_per_frame: int, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.sequence_length = num_frames * tokens_per_frame
        self.position_embedding = nn.Parameter(torch.zeros(self.sequence_length, dim))
        nn.init.normal_(self.position_embedding, std=0.02)
        self.layers = nn.ModuleList(TransformerBlock(dim, config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(dim)
        self.register_buffer("mask", attention_mask(config.mask, num_frames, tokens_per_frame), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B,S,D) -> (B,S,D) with S = num_frames × tokens_per_frame."""
        if tokens.shape[1] != self.sequence_length:
            raise ValueError(f"expected {self.sequence_length} tokens, got {tokens.shape[1]}")
        x = tokens + self.position_embedding
        for layer in self.layers:
            x = layer(x, self.mask)
        return self.final_norm(x)
