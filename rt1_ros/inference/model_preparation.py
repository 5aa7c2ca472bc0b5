"""An inference-ready copy of a trained RT-1: eval mode, batch norms folded into their convolutions, channels-last,
no gradients, on the inference device. The trained model itself is never changed (it stays the reference)."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from rt1_ros.inference.options import InferenceOptions
from rt1_ros.model.rt1 import RT1

# (conv attribute, batch-norm attribute) pairs in the FiLM-EfficientNet's Stem and MBConv modules.
CONV_BN_PAIRS = (("conv", "bn"), ("expand_conv", "expand_bn"), ("depthwise_conv", "depthwise_bn"),
                 ("project_conv", "project_bn"))


def fold_batch_norms(model: nn.Module) -> int:
    """Fold each eval-mode BatchNorm2d into the Conv2d before it, in place; returns how many were folded."""
    if model.training:
        raise RuntimeError("batch norm folding uses the running statistics: call model.eval() first")
    folded = 0
    for module in list(model.modules()):
        for conv_name, bn_name in CONV_BN_PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                                bn.weight, bn.bias)
            conv.weight, conv.bias = weight, bias
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def prepare_model(model: RT1, options: InferenceOptions, device: torch.device) -> RT1:
    """An eval-mode copy of ``model`` on ``device`` with the options applied; ``model`` itself is left as it is
    (callers and tests keep it as the reference)."""
    if options.num_threads:
        torch.set_num_threads(options.num_threads)
    prepared = copy.deepcopy(model).eval()
    if options.fold_batch_norm:
        fold_batch_norms(prepared)
    prepared = prepared.to(device=device, dtype=options.dtype_on(device))
    if options.channels_last:
        prepared.image_encoder.to(memory_format=torch.channels_last)
    for parameter in prepared.parameters():
        parameter.requires_grad_(False)
    return prepared
