"""RT-1: instruction + camera frames -> logits over 256 bins for each of the 11 action dimensions (Brohan et al.
2022, "RT-1: Robotics Transformer for Real-World Control at Scale", Fig. 3):

    text embedding (B,E) ─ [Linear E→D] ─ lang (B,D)
    frames (B,T,3,H,W) ─ per frame: FiLM-EfficientNet(lang) (B·T,g²,D) ─ TokenLearner (B·T,K,D) ─ (B,T,K,D)
    ─ action_head.sequence (B,S,D) ─ CausalTransformer (B,S,W) ─ action_head ─ logits (B,11,bins)

The action head is the readout of the layout the config names (rt1_ros.model.action_readout): "last_token" (the
project's sizes: S = T·K, 11 Linear heads on the last output) or "action_positions" (the released RT-1, `official`
in config/model.yaml: 11 zero inputs after each frame's K tokens, S = T·(K+11), one shared Linear on the outputs
before them). The released network also takes its 512-d embedding without a projection (E = D) and 256×320 frames.

A frame's K tokens depend only on that frame and the instruction, so a control step encodes just the newest frame
and reuses cached tokens for the others (`encode_frame` + `logits_from_frame_tokens`); `forward` is the same
computation over a whole window. In eval mode both give the same logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rt1_ros.configuration.action_layout import MODE_CLASSES, NUM_ACTION_DIMS
from rt1_ros.model.action_readout import READOUTS, ActionReadout, build_readout
from rt1_ros.model.film_efficientnet import FiLMEfficientNet, FiLMEfficientNetConfig
from rt1_ros.model.token_learner import TokenLearner, TokenLearnerConfig
from rt1_ros.model.transformer import CausalTransformer, TransformerConfig
from rt1_ros.configuration.yaml_config import config_dir, load_dataclass

MODEL_SIZES = ("paper", "tiny", "sim", "sim_scratch", "official")
ACTION_READOUTS = tuple(READOUTS)


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
    # The sequence layout and where the action logits come from (rt1_ros.model.action_readout). "last_token": 11
    # linear heads on the transformer's output at the last image token. "action_positions" (the released RT-1):
    # each frame's image tokens are followed by one zero input per action dimension, and one shared Linear reads
    # the 11 outputs ending at the last image token.
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
        if self.action_readout == "last_token" and (self.readout_order or self.mode_class_order):
            raise ValueError("readout_order and mode_class_order apply to action_readout 'action_positions' only")

    @property
    def readout(self) -> type[ActionReadout]:
        """The action readout class of this layout: what it says about windows and training."""
        return READOUTS[self.action_readout]

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames the policy feeds the network."""
        return self.input_frame_size if all(self.input_frame_size) else (self.image_size, self.image_size)

    @property
    def pads_short_windows(self) -> bool:
        """Whether an episode's first windows are padded to num_frames with its first frame (the project's sizes,
        trained so) or read from the frames so far (the released RT-1)."""
        return self.readout.pads_short_windows

    @property
    def supervises_every_frame(self) -> bool:
        """Whether training puts a loss on every frame of a window (the released RT-1) or on the newest only."""
        return self.readout.supervises_every_frame

    @property
    def tokens_per_frame(self) -> int:
        return self.token_learner.num_tokens

    @classmethod
    def from_yaml(cls, size: str = "paper", path: str | Path | None = None) -> "RT1Config":
        """A named size ("paper", "tiny", "sim", "official") from config/model.yaml, or from the given file."""
        return load_dataclass(cls, path or config_dir() / "model.yaml", section=size)


class RT1(nn.Module):
    def __init__(self, config: RT1Config) -> None:
        super().__init__()
        self.config = config
        self.instruction_projection = None
        if config.instruction_projection:
            self.instruction_projection = nn.Linear(config.text_embedding_dim, config.embed_dim)
        self.image_encoder = FiLMEfficientNet(config.backbone, config.image_size)
        self.token_learner = TokenLearner(config.embed_dim, config.token_learner)
        actions = config.readout.action_tokens_per_frame
        self.transformer = CausalTransformer(config.embed_dim, config.num_frames, config.tokens_per_frame + actions,
                                             config.transformer, action_tokens=actions)
        # Registered last, as before the readouts existed: parameter order is the optimizer state's order.
        self.action_head: ActionReadout = build_readout(config.action_readout, self.transformer.width,
                                                        config.num_bins, config.tokens_per_frame,
                                                        config.readout_order, config.mode_class_order)

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

    def encode_frames(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """images (B,T,3,H,W), text_embedding (B,E) -> frame tokens (B,T,K,D)."""
        batch, frames = images.shape[:2]
        instruction = self.embed_instruction(text_embedding)  # (B,D)
        per_frame_instruction = instruction.repeat_interleave(frames, dim=0)  # (B·T,D)
        tokens = self.encode_frame(images.flatten(0, 1), per_frame_instruction)  # (B·T,K,D)
        return tokens.view(batch, frames, *tokens.shape[1:])

    def transformer_outputs(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """frame_tokens (B,T,K,D) -> the transformer's outputs over the layout's sequence (B,S,W). T may be fewer
        than num_frames in the released layout: its first steps read the frames so far."""
        return self.transformer(self.action_head.sequence(frame_tokens))

    def logits_from_frame_tokens(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """frame_tokens (B,T,K,D) -> the newest frame's logits (B,11,bins)."""
        return self.action_head(self.transformer_outputs(frame_tokens))

    def forward(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """images (B,T,3,H,W) in [0,1], text_embedding (B,E) -> logits (B,11,bins)."""
        return self.logits_from_frame_tokens(self.encode_frames(images, text_embedding))

    def sequence_outputs(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Transformer outputs at every image-token position, (B,T·K,W): what causality is checked on."""
        outputs = self.transformer_outputs(self.encode_frames(images, text_embedding))  # (B,S,W)
        return self.action_head.image_outputs(outputs)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
