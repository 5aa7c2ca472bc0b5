"""FiLM-EfficientNet: an EfficientNet image encoder whose every MBConv block is followed by a FiLM layer.

    image (B,3,H,W) in [0,1] ─ ImageNet normalisation ─ stem conv 3×3/2 + BN + SiLU
      ─ N × [MBConv block ─ FiLM(lang)]                      (B,C_last,H/32,W/32)
      ─ AdaptiveAvgPool2d(token_grid)                        (B,C_last,g,g)
      ─ Conv2d 1×1 C_last→embed_dim                           (B,D,g,g)
      ─ flatten                                              (B,g·g,D)

FiLM is zero-initialised (gamma = beta = 0), so at start every block is the plain EfficientNet block and pretrained
ImageNet features pass through unchanged; the language conditioning is learned on top of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# ImageNet statistics used by the torchvision/timm EfficientNet weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MBConvStage:
    """One EfficientNet stage: ``repeats`` MBConv blocks; only the first one strides and changes width."""

    expand_ratio: int
    kernel_size: int
    stride: int
    out_channels: int
    repeats: int


# EfficientNet-B3 = B0 scaled by width 1.2 and depth 1.4 (channels rounded to multiples of 8): 26 blocks.
EFFICIENTNET_B3_STAGES = (
    MBConvStage(1, 3, 1, 24, 2),
    MBConvStage(6, 3, 2, 32, 3),
    MBConvStage(6, 5, 2, 48, 3),
    MBConvStage(6, 3, 2, 96, 5),
    MBConvStage(6, 5, 1, 136, 5),
    MBConvStage(6, 5, 2, 232, 6),
    MBConvStage(6, 3, 1, 384, 2),
)


@dataclass(frozen=True)
class FiLMEfficientNetConfig:
    stem_channels: int = 40
    stages: tuple[MBConvStage, ...] = EFFICIENTNET_B3_STAGES
    # torchvision/timm: squeeze width = block input channels × se_ratio.
    se_ratio: float = 0.25
    drop_path_rate: float = 0.2
    batch_norm_eps: float = 1e-5
    batch_norm_momentum: float = 0.1
    token_grid: int = 9
    embed_dim: int = 512
    conditioning_dim: int = 512
    # A learned embedding per grid cell added to the spatial tokens. The TokenLearner's weighted sums keep *what*
    # the attended cells contain but not *where* they are; without this, where the gripper is relative to the
    # target (what a reach needs) survives only as far as border padding leaks into the features. Off in the
    # paper's design (the official network has none); the `sim` size uses it.
    position_embedding: bool = False
    # Every convolution drawn from He's fan-in normal (Var 2/fan_in, fan_in counting in_channels/groups) with zero
    # biases. Why: PyTorch's default (Var 1/(3·fan_in)), SiLU (≈ x/2 near 0) and the squeeze-excitation gate (≈ 0.5)
    # shrink activations ~42× per MBConv without a skip connection while BatchNorm is still the identity (eval mode,
    # no running statistics yet), so an untrained paper model's tokens are the projection's bias alone and ignore the
    # frame (scripts/activation_report.py). In training BatchNorm uses batch statistics, so the collapse does not
    # happen there, but a run from scratch still starts elsewhere (larger weights, zero biases, and the extra draws
    # shift the seeded initialisation of every later module); loaded weights replace it. On in `paper` and `tiny`;
    # `sim` keeps the default its shipped recipe was measured with.
    he_init: bool = False

    @property
    def num_blocks(self) -> int:
        return sum(stage.repeats for stage in self.stages)

    @property
    def backbone_channels(self) -> int:
        return self.stages[-1].out_channels


class FiLM(nn.Module):
    """Feature-wise linear modulation: out = (1 + gamma) * x + beta, gamma/beta = Linear(conditioning)."""

    def __init__(self, conditioning_dim: int, channels: int) -> None:
        super().__init__()
        self.projection = nn.Linear(conditioning_dim, 2 * channels)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, x: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.projection(conditioning).chunk(2, dim=-1)  # (B,C) each
        return (1 + gamma[:, :, None, None]) * x + beta[:, :, None, None]


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        scale = torch.sigmoid(self.expand(nn.functional.silu(self.reduce(scale))))
        return x * scale


class MBConv(nn.Module):
    """Inverted residual: [1×1 expand] → k×k depthwise → squeeze-excitation → 1×1 project (+ residual)."""

    def __init__(self, in_channels: int, out_channels: int, stage: MBConvStage, stride: int,
                 config: FiLMEfficientNetConfig, drop_path: float) -> None:
        super().__init__()
        hidden = in_channels * stage.expand_ratio
        bn = dict(eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.has_expansion = stage.expand_ratio != 1
        if self.has_expansion:
            self.expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(hidden, **bn)
        self.depthwise_conv = nn.Conv2d(hidden, hidden, stage.kernel_size, stride, padding=stage.kernel_size // 2,
                                        groups=hidden, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(hidden, **bn)
        self.se = SqueezeExcitation(hidden, max(1, int(in_channels * config.se_ratio)))
        self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels, **bn)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = nn.functional.silu(self.expand_bn(self.expand_conv(out)))
        out = nn.functional.silu(self.depthwise_bn(self.depthwise_conv(out)))
        out = self.project_bn(self.project_conv(self.se(out)))
        if not self.use_residual:
            return out
        if self.training and self.drop_path > 0:
            # Stochastic depth per sample, as in EfficientNet training.
            keep = torch.rand(out.shape[0], 1, 1, 1, device=out.device) >= self.drop_path
            out = out * keep / (1 - self.drop_path)
        return out + x


class Stem(nn.Module):
    def __init__(self, channels: int, config: FiLMEfficientNetConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(self.bn(self.conv(x)))


class FiLMEfficientNet(nn.Module):
    def __init__(self, config: FiLMEfficientNetConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = Stem(config.stem_channels, config)
        blocks, films = [], []
        in_channels = config.stem_channels
        for stage in config.stages:
            for repeat in range(stage.repeats):
                # Drop-path probability grows linearly with depth, as in EfficientNet.
                drop_path = config.drop_path_rate * len(blocks) / config.num_blocks
                stride = stage.stride if repeat == 0 else 1
                blocks.append(MBConv(in_channels, stage.out_channels, stage, stride, config, drop_path))
                films.append(FiLM(config.conditioning_dim, stage.out_channels))
                in_channels = stage.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.films = nn.ModuleList(films)
        self.pool = nn.AdaptiveAvgPool2d(config.token_grid)
        self.token_projection = nn.Conv2d(config.backbone_channels, config.embed_dim, 1)
        self.position_embedding = None
        if config.position_embedding:
            self.position_embedding = nn.Parameter(torch.randn(config.token_grid ** 2, config.embed_dim) * 0.02)
        if config.he_init:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor, conditioning: torch.Tensor, use_film: bool = True) -> torch.Tensor:
        """images (B,3,H,W) in [0,1], conditioning (B,conditioning_dim) -> tokens (B, token_grid², embed_dim).

        ``use_film=False`` runs the bare backbone; tests use it to show FiLM is the identity at init.
        """
        x = (images - self.pixel_mean) / self.pixel_std
        x = self.stem(x)  # (B,stem,H/2,W/2)
        for block, film in zip(self.blocks, self.films):
            x = block(x)
            if use_film:
                x = film(x, conditioning)
        x = self.pool(x)  # (B,C_last,g,g)
        x = self.token_projection(x)  # (B,D,g,g)
        tokens = x.flatten(2).transpose(1, 2)  # (B,g·g,D)
        if self.position_embedding is not None:
            tokens = tokens + self.position_embedding  # (g·g,D) broadcast over B
        return tokens


def output_spatial_size(image_size: int, config: FiLMEfficientNetConfig) -> int:
    """Side of the last feature map before pooling (symmetric padding: ceil division per stride)."""
    side = math.ceil(image_size / 2)
    for stage in config.stages:
        side = math.ceil(side / stage.stride)
    return side
