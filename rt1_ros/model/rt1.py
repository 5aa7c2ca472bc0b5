"""RT-1: instruction + 6 camera frames -> logits over 256 bins for each of the 11 action dimensions.

    text embedding (B,384) ─ Linear 384→D ─ lang (B,D)
    frames (B,T,3,H,W) ─ per frame: FiLM-EfficientNet(lang) (B·T,g²,D) ─ TokenLearner (B·T,K,D)
    ─ (B,T·K,D) ─ CausalTransformer ─ last token (B,D) ─ ActionHead ─ logits (B,11,bins)

A frame's K tokens depend only on that frame and the instruction, so a control step encodes just the newest frame
and reuses cached tokens for the others (`encode_frame` + `logits_from_frame_tokens`); `forward` is the same
computation over a whole window, used in training. In eval mode both give the same logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rt1_ros.action_layout import NUM_ACTION_DIMS
from rt1_ros.model.film_efficientnet import FiLMEfficientNet, FiLMEfficientNetConfig
from rt1_ros.model.token_learner import TokenLearner, TokenLearnerConfig
from rt1_ros.model.transformer import CausalTransformer, TransformerConfig
from rt1_ros.yaml_config import config_dir, load_dataclass

MODEL_SIZES = ("paper", "tiny", "sim")


def images_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(...,H,W,3) uint8 numpy -> (...,3,H,W) float32 in [0,1]: the image layout and range RT-1 takes."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).movedim(-1, -3).float().div_(255.0)


@dataclass(frozen=True)
class RT1Config:
    image_size: int = 300
    num_frames: int = 6
    embed_dim: int = 512
    text_embedding_dim: int = 384
    num_bins: int = 256
    backbone: FiLMEfficientNetConfig = field(default_factory=FiLMEfficientNetConfig)
    token_learner: TokenLearnerConfig = field(default_factory=TokenLearnerConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    def __post_init__(self) -> None:
        if self.backbone.embed_dim != self.embed_dim or self.backbone.conditioning_dim != self.embed_dim:
            raise ValueError("backbone.embed_dim and backbone.conditioning_dim must equal embed_dim")

    @property
    def tokens_per_frame(self) -> int:
        return self.token_learner.num_tokens

    @classmethod
    def from_yaml(cls, size: str = "paper", path: str | Path | None = None) -> "RT1Config":
        """A named size ("paper", "tiny") from config/model.yaml, or from the given file."""
        return load_dataclass(cls, path or config_dir() / "model.yaml", section=size)


class ActionHead(nn.Module):
    """One linear classifier per action dimension: (B,D) -> (B,11,bins)."""

    def __init__(self, dim: int, num_bins: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(dim, num_bins) for _ in range(NUM_ACTION_DIMS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(x) for head in self.heads], dim=1)


class RT1(nn.Module):
    def __init__(self, config: RT1Config) -> None:
        super().__init__()
        self.config = config
        self.instruction_projection = nn.Linear(config.text_embedding_dim, config.embed_dim)
        self.image_encoder = FiLMEfficientNet(config.backbone)
        self.token_learner = TokenLearner(config.embed_dim, config.token_learner)
        self.transformer = CausalTransformer(config.embed_dim, config.num_frames, config.tokens_per_frame,
                                             config.transformer)
        self.action_head = ActionHead(config.embed_dim, config.num_bins)

    def embed_instruction(self, text_embedding: torch.Tensor) -> torch.Tensor:
        """(B,384) sentence embedding -> (B,D) conditioning vector."""
        return self.instruction_projection(text_embedding)

    def encode_frame(self, images: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """images (B,3,H,W) in [0,1], instruction (B,D) from `embed_instruction` -> frame tokens (B,K,D)."""
        spatial_tokens = self.image_encoder(images, instruction)  # (B,g²,D)
        return self.token_learner(spatial_tokens)  # (B,K,D)

    def token_attention(self, images: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """images (B,3,H,W), instruction (B,D) -> (B,K,g,g): where on the feature grid each learned token reads,
        the TokenLearner's weights (each map sums to 1). What RT-1 looks at; the demo draws it (--attention)."""
        weights = self.token_learner.attention_weights(self.image_encoder(images, instruction))  # (B,K,g²)
        grid = round(weights.shape[-1] ** 0.5)
        return weights.view(*weights.shape[:2], grid, grid)

    def action_features(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """frame_tokens (B,T,K,D) -> (B,D), the transformer's output at the last token: what the heads read."""
        batch, frames, per_frame, dim = frame_tokens.shape
        sequence = self.transformer(frame_tokens.reshape(batch, frames * per_frame, dim))  # (B,T·K,D)
        return sequence[:, -1]

    def logits_from_frame_tokens(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """frame_tokens (B,T,K,D) -> logits (B,11,bins), read from the last token."""
        return self.action_head(self.action_features(frame_tokens))

    def encode_frames(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """images (B,T,3,H,W), text_embedding (B,384) -> frame tokens (B,T,K,D)."""
        batch, frames = images.shape[:2]
        instruction = self.embed_instruction(text_embedding)  # (B,D)
        per_frame_instruction = instruction.repeat_interleave(frames, dim=0)  # (B·T,D)
        tokens = self.encode_frame(images.flatten(0, 1), per_frame_instruction)  # (B·T,K,D)
        return tokens.view(batch, frames, *tokens.shape[1:])

    def forward(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """images (B,T,3,H,W) in [0,1], text_embedding (B,384) -> logits (B,11,bins)."""
        return self.logits_from_frame_tokens(self.encode_frames(images, text_embedding))

    def sequence_outputs(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Transformer outputs at every position, (B,T·K,D): what causality is checked on."""
        frame_tokens = self.encode_frames(images, text_embedding)
        return self.transformer(frame_tokens.flatten(1, 2))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
