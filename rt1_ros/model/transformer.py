"""Decoder-only transformer over the frame tokens: self-attention under a causal mask, pre-LayerNorm.

    tokens (B,T·K,D) + learned positions (T·K,D) ─ L × [x + Attn(LN(x)); x + FFN(LN(x))] ─ LN ─ (B,T·K,D)

K is the tokens per frame: the image tokens, then with `action_tokens` > 0 that many action positions (the released
RT-1's interleaved sequence, where they are zero inputs and the logits are read from them; rt1.py).

A decoder-only model is self-attention with a mask (no cross-attention). Masks:
- "causal": token i attends to tokens j ≤ i (the default; docs/model.md);
- "block_causal": bidirectional inside a frame, causal across frames (token i attends to j when frame(j) ≤ frame(i));
- "causal_action_blind": causal, and no action position attends to any action position, its own included (the
  released RT-1's mask: band_part minus the action-to-action block of transformer_network.py).
Either way nothing at a position depends on later frames, which is what makes per-frame caching and training on
windows consistent.

Feed-forward "mlp" is D→ffn_dim→D with GELU (the default; docs/model.md); "dense" is the official RT-1's single
Dense(D) layer (Brohan et al. 2022, "RT-1: Robotics Transformer for Real-World Control at Scale").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MASKS = ("causal", "block_causal", "causal_action_blind")
FEED_FORWARDS = ("mlp", "dense")


@dataclass(frozen=True)
class TransformerConfig:
    num_layers: int = 8
    num_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.1
    mask: str = "causal"
    feed_forward: str = "mlp"
    # Width of each attention head; 0: embed_dim / num_heads. The released RT-1 uses Keras' key_dim 128 with 8
    # heads over d=512, an inner width of 1024.
    head_dim: int = 0
    layer_norm_eps: float = 1e-5
    # A LayerNorm after the last layer (the released RT-1 has none).
    final_norm: bool = True
    # A Linear D→width on the input tokens before the positions are added (the released RT-1's `_token_emb`).
    token_embedding: bool = False
    # The transformer's own width (positions, layers, output); 0: embed_dim. Needs token_embedding when it differs:
    # the released rt1multirobot maps its 512-d tokens to 1024.
    width: int = 0

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ValueError(f"transformer.mask must be one of {MASKS}")
        if self.feed_forward not in FEED_FORWARDS:
            raise ValueError(f"transformer.feed_forward must be one of {FEED_FORWARDS}")


def attention_mask(kind: str, num_frames: int, tokens_per_frame: int, action_tokens: int = 0,
                   device=None) -> torch.Tensor:
    """(S,S) boolean, True where query i may attend to key j; S = num_frames × tokens_per_frame, of which the last
    ``action_tokens`` of each frame are action positions. Every mask is prefix-closed: the first n frames' block is
    the mask of n frames."""
    length = num_frames * tokens_per_frame
    position = torch.arange(length, device=device)
    causal = position[None, :] <= position[:, None]
    if kind == "causal":
        return causal
    if kind == "causal_action_blind":
        is_action = position % tokens_per_frame >= tokens_per_frame - action_tokens  # (S,)
        return causal & ~(is_action[:, None] & is_action[None, :])
    frame = position // tokens_per_frame
    return frame[None, :] <= frame[:, None]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float, head_dim: int = 0) -> None:
        super().__init__()
        if not head_dim and dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = head_dim or dim // num_heads
        inner = num_heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * inner)  # rows: all queries (head-major), then keys, then values
        self.out = nn.Linear(inner, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B,heads,S,head_dim)
        attended = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).reshape(batch, length, -1))  # (B,S,heads·head_dim) -> (B,S,D)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, config: TransformerConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attention = SelfAttention(dim, config.num_heads, config.dropout, config.head_dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        if config.feed_forward == "mlp":
            self.ffn = nn.Sequential(nn.Linear(dim, config.ffn_dim), nn.GELU(), nn.Linear(config.ffn_dim, dim))
        else:
            self.ffn = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class CausalTransformer(nn.Module):
    def __init__(self, dim: int, num_frames: int, tokens_per_frame: int, config: TransformerConfig,
                 action_tokens: int = 0) -> None:
        """``tokens_per_frame`` counts a frame's ``action_tokens`` too."""
        super().__init__()
        self.config = config
        self.tokens_per_frame = tokens_per_frame
        self.action_tokens = action_tokens
        self.sequence_length = num_frames * tokens_per_frame
        self.width = config.width or dim
        if self.width != dim and not config.token_embedding:
            raise ValueError(f"transformer.width {self.width} differs from the tokens' {dim}: needs token_embedding")
        self.token_embedding = nn.Linear(dim, self.width) if config.token_embedding else None
        self.position_embedding = nn.Parameter(torch.zeros(self.sequence_length, self.width))
        nn.init.normal_(self.position_embedding, std=0.02)
        self.layers = nn.ModuleList(TransformerBlock(self.width, config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(self.width, eps=config.layer_norm_eps) if config.final_norm else None
        self.register_buffer("mask", attention_mask(config.mask, num_frames, tokens_per_frame, action_tokens),
                             persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B,S,D) -> (B,S,width) with S = num_frames × tokens_per_frame, or, in the released layout (action
        tokens), fewer whole frames: the first positions and the mask's top-left block (the released RT-1 reads its
        first steps from a partly filled window). The project's own sizes always take a full window."""
        length = tokens.shape[1]
        short_allowed = self.action_tokens > 0
        if (length > self.sequence_length or length == 0 or length % self.tokens_per_frame
                or (length != self.sequence_length and not short_allowed)):
            raise ValueError(f"expected {self.sequence_length} tokens (or fewer whole frames of "
                             f"{self.tokens_per_frame}), got {length}")
        x = tokens if self.token_embedding is None else self.token_embedding(tokens)  # (B,S,width)
        x = x + self.position_embedding[:length]
        mask = self.mask[:length, :length]
        for layer in self.layers:
            x = layer(x, mask)
        return x if self.final_norm is None else self.final_norm(x)
