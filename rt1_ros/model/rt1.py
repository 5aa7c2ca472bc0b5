"""RT-1: instruction + 6 camera frames -> logits over 256 bins for each of the 11 action dimensions.

    text embedding (B,384) ─ Linear 384→D ─ lang (B,D)
    frames (B,T,3,H,W) ─ per frame: FiLM-EfficientNet(lang) (B·T,g²,D) ─ TokenLearner (B·T,K,D)
    ─ (B,T·K,D) ─ CausalTransformer ─ last token (B,D) ─ ActionHead ─ logits (B,11,bins)

A frame's K tokens depend only on that frame and the instruction, so a control step encodes just the newest frame
and reuses cached tokens for the others (`encode_frame` + `logits_from_frame_tokens`); `forward` is the same
computation over a whole window, used in training. In eval mode both give the same logits.

The released RT-1 (`official` in config/model.yaml, `action_readout: action_positions`) differs in its sequence and
readout; everything else is the same blocks with other options:

    text embedding (B,512) = lang (B,D)   (no projection)
    per frame: [K image tokens, 11 zero action tokens] ─ (B,T·(K+11),D) ─ CausalTransformer (mask
    causal_action_blind) ─ outputs at -1 + K + (T-1)·(K+11) + k, k = 0..10 (B,11,D) ─ one shared Linear
    ─ logits (B,11,bins), rows and mode classes reordered into rt1_ros.configuration.action_layout's order
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rt1_ros.configuration.action_layout import MODE_CLASSES, MODE_DIM, NUM_ACTION_DIMS
from rt1_ros.model.film_efficientnet import FiLMEfficientNet, FiLMEfficientNetConfig
from rt1_ros.model.token_learner import TokenLearner, TokenLearnerConfig
from rt1_ros.model.transformer import CausalTransformer, TransformerConfig
from rt1_ros.configuration.yaml_config import config_dir, load_dataclass

MODEL_SIZES = ("paper", "tiny", "sim", "sim_scratch", "official")
ACTION_READOUTS = ("last_token", "action_positions")


def images_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(...,H,W,3) uint8 numpy -> (...,3,H,W) float32 in [0,1]: the image layout and range RT-1 takes."""
    rgb = np.ascontiguousarray(rgb)
    if not rgb.flags.writeable:  # a view into a received message's bytes: torch wants memory it may write
        rgb = rgb.copy()
    return torch.from_numpy(rgb).movedim(-1, -3).float().div_(255.0)


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
    # A Linear text_embedding_dim→embed_dim from the sentence embedding to the FiLM conditioning; false: the
    # embedding is the conditioning itself (the released RT-1 feeds its 512-d USE embedding straight to FiLM).
    instruction_projection: bool = True
    # Where the action logits come from. "last_token": 11 linear heads on the transformer's output at the last image
    # token. "action_positions" (the released RT-1): each frame's image tokens are followed by one zero input per
    # action dimension, and one shared Linear reads the 11 outputs ending at the last image token (see module doc).
    action_readout: str = "last_token"
    # With "action_positions": for each of the 11 dimensions of rt1_ros.configuration.action_layout (arm xyz, roll pitch
    # yaw, gripper, base x y yaw, mode), which position k of the released sequence holds it; and for each mode class of
    # action_layout.MODE_CLASSES (arm, base, terminate), its index in the released terminate_episode one-hot. The logits
    # come out in this project's order, so the tokenizer and the node need no other change. Empty: in order.
    readout_order: tuple[int, ...] = ()
    mode_class_order: tuple[int, ...] = ()
    # (height, width) a camera frame is resized to before the network, which resizes it to image_size itself
    # (backbone.resize_input); the released RT-1 was trained on 256×320 frames. (0, 0): image_size × image_size.
    input_frame_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.backbone.embed_dim != self.embed_dim or self.backbone.conditioning_dim != self.embed_dim:
            raise ValueError("backbone.embed_dim and backbone.conditioning_dim must equal embed_dim")
        if not self.instruction_projection and self.text_embedding_dim != self.embed_dim:
            raise ValueError(f"without instruction_projection the text embedding ({self.text_embedding_dim}-d) is "
                             f"the FiLM conditioning and must be embed_dim ({self.embed_dim}) wide")
        if self.action_readout not in ACTION_READOUTS:
            raise ValueError(f"action_readout must be one of {ACTION_READOUTS}")
        if self.readout_order and sorted(self.readout_order) != list(range(NUM_ACTION_DIMS)):
            raise ValueError(f"readout_order must be a permutation of 0..{NUM_ACTION_DIMS - 1}")
        if self.mode_class_order and sorted(self.mode_class_order) != list(range(len(MODE_CLASSES))):
            raise ValueError(f"mode_class_order must be a permutation of 0..{len(MODE_CLASSES) - 1}")

    @property
    def action_tokens_per_frame(self) -> int:
        """Action positions per frame in the transformer's sequence (0 with the last-token readout)."""
        return NUM_ACTION_DIMS if self.action_readout == "action_positions" else 0

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames the policy feeds the network."""
        return self.input_frame_size if all(self.input_frame_size) else (self.image_size, self.image_size)

    @property
    def pads_short_windows(self) -> bool:
        """Whether an episode's first windows are padded to num_frames with its first frame (the project's sizes,
        trained so) or read from the frames so far (the released RT-1)."""
        return self.action_readout == "last_token"

    @property
    def tokens_per_frame(self) -> int:
        return self.token_learner.num_tokens

    @classmethod
    def from_yaml(cls, size: str = "paper", path: str | Path | None = None) -> "RT1Config":
        """A named size ("paper", "tiny", "sim", "official") from config/model.yaml, or from the given file."""
        return load_dataclass(cls, path or config_dir() / "model.yaml", section=size)


class ActionHead(nn.Module):
    """One linear classifier per action dimension, (B,D) -> (B,11,bins); or ``shared``: one classifier for the 11
    action positions' features, (B,11,D) -> (B,11,bins)."""

    def __init__(self, dim: int, num_bins: int, shared: bool = False) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(dim, num_bins) for _ in range(1 if shared else NUM_ACTION_DIMS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.heads) == 1:
            return self.heads[0](x)
        return torch.stack([head(x) for head in self.heads], dim=1)


class RT1(nn.Module):
    def __init__(self, config: RT1Config) -> None:
        super().__init__()
        self.config = config
        self.instruction_projection = None
        if config.instruction_projection:
            self.instruction_projection = nn.Linear(config.text_embedding_dim, config.embed_dim)
        self.image_encoder = FiLMEfficientNet(config.backbone, config.image_size)
        self.token_learner = TokenLearner(config.embed_dim, config.token_learner)
        actions = config.action_tokens_per_frame
        self.transformer = CausalTransformer(config.embed_dim, config.num_frames, config.tokens_per_frame + actions,
                                             config.transformer, action_tokens=actions)
        self.action_head = ActionHead(self.transformer.width, config.num_bins, shared=bool(actions))
        if actions:
            order = torch.tensor(config.readout_order or range(NUM_ACTION_DIMS))
            # Offsets of this project's dimensions from the first read position, -1 + K + (T-1)·(K+11).
            self.register_buffer("readout_offsets", order, persistent=False)
            classes = list(config.mode_class_order or range(len(MODE_CLASSES)))
            self.register_buffer("mode_bins", torch.tensor(classes + list(range(len(classes), config.num_bins))),
                                 persistent=False)

    def embed_instruction(self, text_embedding: torch.Tensor) -> torch.Tensor:
        """(B,E) sentence embedding -> (B,D) conditioning vector."""
        if self.instruction_projection is None:
            return text_embedding
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
        """frame_tokens (B,T,K,D) -> what the heads read: the transformer's output at the last token (B,W), or with
        the action-position readout the outputs for the 11 dimensions (B,11,W); W is the transformer's width. T may
        be fewer than num_frames with that readout: the released RT-1 reads its first steps from the frames so far."""
        batch, frames, per_frame, dim = frame_tokens.shape
        actions = self.config.action_tokens_per_frame
        if actions:
            zeros = frame_tokens.new_zeros(batch, frames, actions, dim)
            frame_tokens = torch.cat([frame_tokens, zeros], dim=2)  # (B,T,K+11,D)
        sequence = self.transformer(frame_tokens.reshape(batch, -1, dim))  # (B,T·(K+11),W)
        if not actions:
            return sequence[:, -1]
        first = (frames - 1) * (per_frame + actions) + per_frame - 1
        return sequence[:, first + self.readout_offsets]  # (B,11,W), this project's dimension order

    def logits_from_frame_tokens(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """frame_tokens (B,T,K,D) -> logits (B,11,bins)."""
        logits = self.action_head(self.action_features(frame_tokens))
        if self.config.action_tokens_per_frame:
            # The mode row's first bins in action_layout.MODE_CLASSES' order.
            mode = logits[:, MODE_DIM:, self.mode_bins]  # (B,1,bins)
            logits = torch.cat([logits[:, :MODE_DIM], mode], dim=1)
        return logits

    def encode_frames(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """images (B,T,3,H,W), text_embedding (B,E) -> frame tokens (B,T,K,D)."""
        batch, frames = images.shape[:2]
        instruction = self.embed_instruction(text_embedding)  # (B,D)
        per_frame_instruction = instruction.repeat_interleave(frames, dim=0)  # (B·T,D)
        tokens = self.encode_frame(images.flatten(0, 1), per_frame_instruction)  # (B·T,K,D)
        return tokens.view(batch, frames, *tokens.shape[1:])

    def forward(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """images (B,T,3,H,W) in [0,1], text_embedding (B,E) -> logits (B,11,bins)."""
        return self.logits_from_frame_tokens(self.encode_frames(images, text_embedding))

    def sequence_outputs(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Transformer outputs at every image-token position, (B,T·K,W): what causality is checked on."""
        frame_tokens = self.encode_frames(images, text_embedding)  # (B,T,K,D)
        batch, frames, per_frame, dim = frame_tokens.shape
        actions = self.config.action_tokens_per_frame
        zeros = frame_tokens.new_zeros(batch, frames, actions, dim)
        outputs = self.transformer(torch.cat([frame_tokens, zeros], dim=2).flatten(1, 2))
        return outputs.view(batch, frames, per_frame + actions, -1)[:, :, :per_frame].flatten(1, 2)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
