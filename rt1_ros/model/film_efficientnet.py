"""FiLM-EfficientNet: an EfficientNet image encoder whose every MBConv block is followed by a FiLM layer.

    image (B,3,H,W) in [0,1] ─ ImageNet normalisation ─ stem conv 3×3/2 + BN + SiLU
      ─ N × [MBConv block ─ FiLM(lang)]                      (B,C_last,H/32,W/32)
      [─ top conv 1×1 C_last→top_channels + BN + SiLU]       (B,C_top,H/32,W/32)
      ─ AdaptiveAvgPool2d(token_grid)                        (B,C,g,g)
      ─ Conv2d 1×1 C→embed_dim                               (B,D,g,g)
      [─ FiLM(lang)]                                         (B,D,g,g)
      ─ flatten                                              (B,g·g,D)

FiLM is zero-initialised (gamma = beta = 0), so at start every block is the plain EfficientNet block and pretrained
ImageNet features pass through unchanged; the language conditioning is learned on top of them.

The bracketed steps, the Keras input normalisation, the frame resize and Keras' stride-2 padding are the released
RT-1 network's (the `official` size, config/model.yaml): with them this is its image tokenizer exactly, so the
released checkpoints convert (rt1_ros.convert).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# ImageNet statistics used by the torchvision/timm EfficientNet weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite's input scaling ((x·255 - 127) / 128, from TensorFlow's reference EfficientNet-Lite).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
STRIDE2_PADDINGS = ("symmetric", "keras")
INPUT_NORMALISATIONS = ("imagenet", "keras", "lite")
ACTIVATIONS = ("silu", "relu6")
KERAS_NORMALIZATION_EPSILON = 1e-7  # Keras' backend.epsilon(), the floor of sqrt(variance)


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
    # Zero padding of the stride-2 convolutions (stem and depthwise): "symmetric" k//2 on each side (PyTorch's
    # usual); "keras": (k//2 - 1) before and k//2 after on every side, whatever the input size. That is Keras
    # EfficientNet's `correct_pad` for a model built with an unknown input size, as the released RT-1's is: TF 'SAME'
    # on even sizes, one pixel less on odd ones (300 px gives a 9×9 map, not SAME's 10×10).
    stride2_padding: str = "symmetric"
    # Input normalisation: "imagenet" (fixed ImageNet mean/std); "keras": Keras EfficientNet's Normalization layer
    # ((x - mean) / sqrt(variance), mean and variance being weights of the checkpoint) followed by its constant
    # rescale by 1 / sqrt(ImageNet std).
    input_normalisation: str = "imagenet"
    # Frames are resized inside the encoder to image_size × image_size (bilinear, half-pixel centres, no antialias:
    # TensorFlow's tf.image.resize), so the network takes the camera's own shape; the released RT-1 takes 256×320.
    # False: frames arrive already image_size square.
    resize_input: bool = False
    # > 0: EfficientNet's top 1×1 conv + BN + SiLU to this many channels before the token projection (1536 in B3).
    top_channels: int = 0
    # The token projection's bias (the released network's `conv1x1` has none).
    token_projection_bias: bool = True
    # A FiLM layer on the projected tokens too (the released network's final `film_layer`).
    film_tokens: bool = False
    # The activation of the stem and the blocks: EfficientNet's SiLU, or EfficientNet-Lite's ReLU6 (with se_ratio 0:
    # Lite has no squeeze-excitation either).
    activation: str = "silu"
    # The stem and this many first blocks keep the weights they were given (ImageNet's): no gradient, BatchNorm
    # statistics fixed, and their FiLM layers unused. Why: on a CPU the full-resolution early blocks cost most of a
    # training step's backward pass, and edge and colour filters need no language conditioning.
    frozen_blocks: int = 0

    def __post_init__(self) -> None:
        if self.stride2_padding not in STRIDE2_PADDINGS:
            raise ValueError(f"backbone.stride2_padding must be one of {STRIDE2_PADDINGS}")
        if self.input_normalisation not in INPUT_NORMALISATIONS:
            raise ValueError(f"backbone.input_normalisation must be one of {INPUT_NORMALISATIONS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"backbone.activation must be one of {ACTIVATIONS}")
        if not 0 <= self.frozen_blocks <= self.num_blocks:
            raise ValueError(f"backbone.frozen_blocks must be in [0, {self.num_blocks}]")

    @property
    def num_blocks(self) -> int:
        return sum(stage.repeats for stage in self.stages)

    @property
    def backbone_channels(self) -> int:
        """Channels the token projection reads."""
        return self.top_channels or self.stages[-1].out_channels


def keras_stride2_pad(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B,C,h,w) -> (B,C,h+k-2,w+k-2): the zero padding before a stride-2 'valid' convolution with "keras"
    stride2_padding (FiLMEfficientNetConfig)."""
    before, after = kernel_size // 2 - 1, kernel_size // 2
    return nn.functional.pad(x, (before, after, before, after))


def conv_padding(kernel_size: int, stride: int, config: "FiLMEfficientNetConfig") -> int:
    """The Conv2d's own padding: none where `keras_stride2_pad` pads first."""
    return 0 if stride == 2 and config.stride2_padding == "keras" else kernel_size // 2


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


def activation(config: "FiLMEfficientNetConfig"):
    """The stem's and the blocks' activation function."""
    return nn.functional.relu6 if config.activation == "relu6" else nn.functional.silu


class MBConv(nn.Module):
    """Inverted residual: [1×1 expand] → k×k depthwise → [squeeze-excitation] → 1×1 project (+ residual)."""

    def __init__(self, in_channels: int, out_channels: int, stage: MBConvStage, stride: int,
                 config: FiLMEfficientNetConfig, drop_path: float) -> None:
        super().__init__()
        hidden = in_channels * stage.expand_ratio
        self.activation = activation(config)
        bn = dict(eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.has_expansion = stage.expand_ratio != 1
        if self.has_expansion:
            self.expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(hidden, **bn)
        self.depthwise_conv = nn.Conv2d(hidden, hidden, stage.kernel_size, stride,
                                        padding=conv_padding(stage.kernel_size, stride, config), groups=hidden,
                                        bias=False)
        self.pad_first = stride == 2 and config.stride2_padding == "keras"
        self.depthwise_bn = nn.BatchNorm2d(hidden, **bn)
        self.se = (SqueezeExcitation(hidden, max(1, int(in_channels * config.se_ratio))) if config.se_ratio > 0
                   else nn.Identity())
        self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels, **bn)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = self.activation(self.expand_bn(self.expand_conv(out)))
        if self.pad_first:
            out = keras_stride2_pad(out, self.depthwise_conv.kernel_size[0])
        out = self.activation(self.depthwise_bn(self.depthwise_conv(out)))
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
        self.conv = nn.Conv2d(3, channels, 3, stride=2, padding=conv_padding(3, 2, config), bias=False)
        self.bn = nn.BatchNorm2d(channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.pad_first = config.stride2_padding == "keras"
        self.activation = activation(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_first:
            x = keras_stride2_pad(x, 3)
        return self.activation(self.bn(self.conv(x)))


class Top(nn.Module):
    """EfficientNet's head before its classifier: 1×1 conv + BN + SiLU."""

    def __init__(self, in_channels: int, channels: int, config: FiLMEfficientNetConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(self.bn(self.conv(x)))


class FiLMEfficientNet(nn.Module):
    def __init__(self, config: FiLMEfficientNetConfig, image_size: int = 0) -> None:
        """``image_size``: the side frames are resized to with ``config.resize_input`` (RT1Config.image_size)."""
        super().__init__()
        if config.resize_input and image_size <= 0:
            raise ValueError("backbone.resize_input needs the image_size to resize to")
        self.config = config
        self.image_size = image_size
        if config.input_normalisation == "lite":
            self.register_buffer("pixel_mean", torch.tensor(LITE_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("pixel_std", torch.tensor(LITE_STD).view(1, 3, 1, 1), persistent=False)
        elif config.input_normalisation == "keras":
            # Weights of the checkpoint (Keras' Normalization layer); ImageNet's values until one is loaded (Keras
            # stores the std as the "variance", undone by the constant rescale: together (x - mean) / std).
            self.register_buffer("input_mean", torch.tensor(IMAGENET_MEAN))
            self.register_buffer("input_variance", torch.tensor(IMAGENET_STD))
            self.register_buffer("input_rescale", torch.tensor(IMAGENET_STD).rsqrt().view(1, 3, 1, 1),
                                 persistent=False)
        else:
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
        self.top = Top(in_channels, config.top_channels, config) if config.top_channels else None
        self.pool = nn.AdaptiveAvgPool2d(config.token_grid)
        self.token_projection = nn.Conv2d(config.backbone_channels, config.embed_dim, 1,
                                          bias=config.token_projection_bias)
        self.token_film = FiLM(config.conditioning_dim, config.embed_dim) if config.film_tokens else None
        self.position_embedding = None
        if config.position_embedding:
            self.position_embedding = nn.Parameter(torch.randn(config.token_grid ** 2, config.embed_dim) * 0.02)
        if config.he_init:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        for parameter in self.frozen_modules().parameters():
            parameter.requires_grad_(False)

    def frozen_modules(self) -> nn.ModuleList:
        """The stem, the first ``frozen_blocks`` blocks and their (unused) FiLM layers."""
        count = self.config.frozen_blocks
        if count == 0:
            return nn.ModuleList()
        return nn.ModuleList([self.stem, *self.blocks[:count], *self.films[:count]])

    def train(self, mode: bool = True) -> "FiLMEfficientNet":
        """As nn.Module.train, but frozen blocks stay in eval mode: their BatchNorm statistics are the loaded ones."""
        super().train(mode)
        for module in self.frozen_modules():
            module.train(False)
        return self

    def forward(self, images: torch.Tensor, conditioning: torch.Tensor, use_film: bool = True) -> torch.Tensor:
        """images (B,3,H,W) in [0,1], conditioning (B,conditioning_dim) -> tokens (B, token_grid², embed_dim).

        ``use_film=False`` runs the bare backbone; tests use it to show FiLM is the identity at init.
        """
        x = self.feature_map(images, conditioning, use_film)  # (B,C,h,w)
        x = self.pool(x)  # (B,C,g,g)
        x = self.token_projection(x)  # (B,D,g,g)
        if self.token_film is not None and use_film:
            x = self.token_film(x, conditioning)
        tokens = x.flatten(2).transpose(1, 2)  # (B,g·g,D)
        if self.position_embedding is not None:
            tokens = tokens + self.position_embedding  # (g·g,D) broadcast over B
        return tokens

    def feature_map(self, images: torch.Tensor, conditioning: torch.Tensor, use_film: bool = True) -> torch.Tensor:
        """images (B,3,H,W) -> the EfficientNet's last feature map (B,C,h,w), h = w = output_spatial_size."""
        x = self.stem(self.normalise(images))  # (B,stem,H/2,W/2)
        for index, (block, film) in enumerate(zip(self.blocks, self.films)):
            x = block(x)
            if use_film and index >= self.config.frozen_blocks:
                x = film(x, conditioning)
        if self.top is not None:
            x = self.top(x)  # (B,C_top,h,w)
        return x

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """images (B,3,h,w) in [0,1] -> (B,3,S,S) the stem's input (resized first with ``resize_input``)."""
        size = self.image_size
        if self.config.resize_input and tuple(images.shape[-2:]) != (size, size):
            images = tf_resize_bilinear(images, size)
        if self.config.input_normalisation == "keras":
            # Keras: x·255 then Rescaling(1/255) (that round trip is the identity up to rounding), Normalization,
            # Rescaling(1/sqrt(std)).
            mean = self.input_mean.view(1, 3, 1, 1)
            std = self.input_variance.sqrt().clamp_min(KERAS_NORMALIZATION_EPSILON).view(1, 3, 1, 1)
            return (images - mean) / std * self.input_rescale
        return (images - self.pixel_mean) / self.pixel_std


def _resize_axis(size: int, out: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF's half-pixel source positions along one axis, in float32 as its kernel computes them: (low, high, lerp)."""
    scale = torch.tensor(size, dtype=torch.float32, device=device) / out  # float(in) / out, as TF
    source = (torch.arange(out, dtype=torch.float32, device=device) + 0.5) * scale - 0.5
    floor = source.floor()
    low = floor.clamp(min=0).long()
    high = source.ceil().clamp(max=size - 1).long()
    return low, high, source - floor


def tf_resize_bilinear(images: torch.Tensor, out: int) -> torch.Tensor:
    """(B,C,h,w) -> (B,C,out,out): TensorFlow's tf.image.resize (bilinear, half-pixel centres, no antialiasing)
    with its kernel's own arithmetic, top = tl + (tr - tl)·x_lerp, result = top + (bottom - top)·y_lerp.
    PyTorch's interpolate samples the same points but sums w0·a + w1·b, which differs by ~1e-7, and the released
    network turns input differences of that size into ~1e-4 in its logits."""
    y_low, y_high, y_lerp = _resize_axis(images.shape[-2], out, images.device)
    x_low, x_high, x_lerp = _resize_axis(images.shape[-1], out, images.device)
    y_lerp = y_lerp.to(images.dtype)[:, None]  # (out,1)
    x_lerp = x_lerp.to(images.dtype)
    top_rows, bottom_rows = images[..., y_low, :], images[..., y_high, :]  # (B,C,out,w)
    top = top_rows[..., x_low] + (top_rows[..., x_high] - top_rows[..., x_low]) * x_lerp  # (B,C,out,out)
    bottom = bottom_rows[..., x_low] + (bottom_rows[..., x_high] - bottom_rows[..., x_low]) * x_lerp
    return top + (bottom - top) * y_lerp


def output_spatial_size(image_size: int, config: FiLMEfficientNetConfig) -> int:
    """Side of the last feature map before pooling: each stride-2 conv halves it, rounding up with symmetric
    padding and down with "keras" padding (300 px: 10 vs 9)."""
    side = image_size
    for _ in range(1 + sum(stage.stride == 2 for stage in config.stages)):
        side = side // 2 if config.stride2_padding == "keras" else math.ceil(side / 2)
    return side
