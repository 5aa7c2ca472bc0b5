"""ImageNet weight loading, with synthetic state dicts laid out as torchvision and timm lay out EfficientNet-B3."""
import pickle

import pytest
import torch

from rt1_ros.model.film_efficientnet import FiLMEfficientNet
from rt1_ros.model.pretrained_backbone import BackboneWeightsError, load_imagenet_backbone, read_state_dict


def _conv_bn(prefix_conv, prefix_bn, out_c, in_c, k, groups=1):
    state = {f"{prefix_conv}.weight": torch.randn(out_c, in_c // groups, k, k)}
    for leaf, shape in (("weight", out_c), ("bias", out_c), ("running_mean", out_c), ("running_var", out_c)):
        state[f"{prefix_bn}.{leaf}"] = torch.rand(shape) + (0.5 if leaf == "running_var" else 0)
    state[f"{prefix_bn}.num_batches_tracked"] = torch.tensor(7)
    return state


def torchvision_b3_state(config):
    """Key names and shapes of torchvision.models.efficientnet_b3().state_dict() (classifier included)."""
    state = _conv_bn("features.0.0", "features.0.1", config.stem_channels, 3, 3)
    in_c = config.stem_channels
    for s, stage in enumerate(config.stages, start=1):
        for j in range(stage.repeats):
            hidden, p = in_c * stage.expand_ratio, f"features.{s}.{j}.block"
            parts = []
            if stage.expand_ratio != 1:
                state.update(_conv_bn(f"{p}.0.0", f"{p}.0.1", hidden, in_c, 1))
                parts.append(0)
            d = len(parts)
            state.update(_conv_bn(f"{p}.{d}.0", f"{p}.{d}.1", hidden, hidden, stage.kernel_size, groups=hidden))
            squeeze = max(1, in_c // 4)
            state[f"{p}.{d + 1}.fc1.weight"] = torch.randn(squeeze, hidden, 1, 1)
            state[f"{p}.{d + 1}.fc1.bias"] = torch.randn(squeeze)
            state[f"{p}.{d + 1}.fc2.weight"] = torch.randn(hidden, squeeze, 1, 1)
            state[f"{p}.{d + 1}.fc2.bias"] = torch.randn(hidden)
            state.update(_conv_bn(f"{p}.{d + 2}.0", f"{p}.{d + 2}.1", stage.out_channels, hidden, 1))
            in_c = stage.out_channels
    state.update(_conv_bn("features.8.0", "features.8.1", 1536, in_c, 1))
    state["classifier.1.weight"] = torch.randn(1000, 1536)
    state["classifier.1.bias"] = torch.randn(1000)
    return state


def timm_b3_state(config):
    state = _conv_bn("conv_stem", "bn1", config.stem_channels, 3, 3)
    in_c = config.stem_channels
    for s, stage in enumerate(config.stages):
        for j in range(stage.repeats):
            hidden, p = in_c * stage.expand_ratio, f"blocks.{s}.{j}"
            squeeze = max(1, in_c // 4)
            if stage.expand_ratio != 1:
                state.update(_conv_bn(f"{p}.conv_pw", f"{p}.bn1", hidden, in_c, 1))
                dw_bn, pw, pw_bn = "bn2", "conv_pwl", "bn3"
            else:
                dw_bn, pw, pw_bn = "bn1", "conv_pw", "bn2"
            state.update(_conv_bn(f"{p}.conv_dw", f"{p}.{dw_bn}", hidden, hidden, stage.kernel_size, groups=hidden))
            state[f"{p}.se.conv_reduce.weight"] = torch.randn(squeeze, hidden, 1, 1)
            state[f"{p}.se.conv_reduce.bias"] = torch.randn(squeeze)
            state[f"{p}.se.conv_expand.weight"] = torch.randn(hidden, squeeze, 1, 1)
            state[f"{p}.se.conv_expand.bias"] = torch.randn(hidden)
            state.update(_conv_bn(f"{p}.{pw}", f"{p}.{pw_bn}", stage.out_channels, hidden, 1))
            in_c = stage.out_channels
    state["conv_head.weight"] = torch.randn(1536, in_c, 1, 1)
    state["classifier.weight"] = torch.randn(1000, 1536)
    return state


@pytest.mark.parametrize("layout", [torchvision_b3_state, timm_b3_state])
def test_every_backbone_tensor_is_loaded(paper_config, layout):
    torch.manual_seed(0)
    state = layout(paper_config.backbone)
    backbone = FiLMEfficientNet(paper_config.backbone)
    film_before = {k: v.clone() for k, v in backbone.state_dict().items() if k.startswith("films.")}
    loaded = load_imagenet_backbone(backbone, state)
    own = backbone.state_dict()
    assert len(loaded) == len([k for k in own if k.startswith(("stem.", "blocks."))])
    if layout is torchvision_b3_state:
        torch.testing.assert_close(own["stem.conv.weight"], state["features.0.0.weight"])
        torch.testing.assert_close(own["blocks.25.project_bn.running_var"], state["features.7.1.block.3.1.running_var"])
        torch.testing.assert_close(own["blocks.2.se.reduce.weight"], state["features.2.0.block.2.fc1.weight"])
    else:
        torch.testing.assert_close(own["blocks.0.depthwise_conv.weight"], state["blocks.0.0.conv_dw.weight"])
        torch.testing.assert_close(own["blocks.25.project_conv.weight"], state["blocks.6.1.conv_pwl.weight"])
    for key, value in film_before.items():
        assert torch.equal(own[key], value), "FiLM layers must stay zero-initialised"


def test_missing_tensor_is_named(paper_config):
    state = torchvision_b3_state(paper_config.backbone)
    del state["features.4.2.block.1.0.weight"]
    with pytest.raises(BackboneWeightsError, match=r"blocks\.10\.depthwise_conv\.weight"):
        load_imagenet_backbone(FiLMEfficientNet(paper_config.backbone), state)


def test_wrong_variant_is_refused(paper_config, tiny_config):
    state = torchvision_b3_state(tiny_config.backbone)  # another width/depth: shapes and keys differ
    with pytest.raises(BackboneWeightsError):
        load_imagenet_backbone(FiLMEfficientNet(paper_config.backbone), state)


def test_files_load_without_executing_pickles(paper_config, tmp_path):
    good = tmp_path / "b3.pth"
    torch.save(torchvision_b3_state(paper_config.backbone), good)
    load_imagenet_backbone(FiLMEfficientNet(paper_config.backbone), good)

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"features.0.0.weight": Exploit()}))
    with pytest.raises(BackboneWeightsError, match="weights_only"):
        read_state_dict(evil)
    assert not (tmp_path / "pwned").exists()
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(evil.read_bytes())
    with pytest.raises(BackboneWeightsError, match="evil.safetensors.*not a valid safetensors"):
        read_state_dict(disguised)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(BackboneWeightsError, match="not found"):
        read_state_dict(tmp_path / "absent.pth")
