"""Shared fixtures: small model configs and a fixed action space, so the default test run stays fast."""
from __future__ import annotations

import pytest
import torch

from rt1_ros.model.action_tokenizer import ActionSpaceConfig, ActionTokenizer
from rt1_ros.model.rt1 import RT1, RT1Config
from rt1_ros.configuration.yaml_config import from_mapping, to_mapping
from rt1_ros.node.shared_memory import is_segment, remove_zombie_files, zombie_files


_SEGMENTS_BEFORE: set = set()


def pytest_sessionstart(session):
    _SEGMENTS_BEFORE.update(path.name for path in zombie_files() if is_segment(path.name))


def pytest_sessionfinish(session, exitstatus):
    """Tests that SIGKILL a node on purpose leave its Fast DDS segment (up to 64 MiB of /dev/shm, which is RAM):
    remove the zombie segments that appeared during this run, nothing older (segments only: ports are shared by
    number with whatever else runs). A run that pytest-timeout ends (it exits the process) skips this."""
    remove_zombie_files(segments_only=True, keep=frozenset(_SEGMENTS_BEFORE))


@pytest.fixture(scope="session")
def tiny_config() -> RT1Config:
    return RT1Config.from_yaml("tiny")


@pytest.fixture(scope="session")
def paper_config() -> RT1Config:
    return RT1Config.from_yaml("paper")


@pytest.fixture
def tiny_model(tiny_config) -> RT1:
    torch.manual_seed(0)
    return RT1(tiny_config).eval()


@pytest.fixture(scope="session")
def trained_model() -> RT1:
    """The shipped trained policy (models/rt1_sim, 128 px). Checks that two computations give the same output use it:
    a trained model is what users run, and an untrained one built without `backbone.he_init` (the `sim` size) barely
    depends on the image (~1e-6), so it would agree whatever the code did
    (`rt1_ros.inference.parity.input_dependence`)."""
    from rt1_ros.model.checkpoint import from_pretrained
    from rt1_ros.runtime.policy_loading import shipped_model_path

    model, _, _ = from_pretrained(shipped_model_path())
    return model.eval()


@pytest.fixture(scope="session")
def action_space() -> ActionSpaceConfig:
    return ActionSpaceConfig.from_yaml()


@pytest.fixture(scope="session")
def tokenizer(action_space) -> ActionTokenizer:
    return ActionTokenizer(action_space)


@pytest.fixture(scope="session")
def small_official_config() -> RT1Config:
    """The official variant scaled down: odd feature-map sizes (60 px: 30, 15, 7), a head width that is not
    width / heads (like the released 8 × 128 over d=512), a transformer wider than the tokens (like rt1multirobot's
    1024 over 512), 3 frames."""
    mapping = to_mapping(RT1Config.from_yaml("official"))
    mapping.update(image_size=60, input_frame_size=[48, 64], num_frames=3, embed_dim=32, text_embedding_dim=32)
    mapping["backbone"].update(stem_channels=8, top_channels=24, token_grid=7, embed_dim=32, conditioning_dim=32,
                               stages=[{"expand_ratio": 1, "kernel_size": 3, "stride": 1, "out_channels": 8,
                                        "repeats": 1},
                                       {"expand_ratio": 4, "kernel_size": 3, "stride": 2, "out_channels": 12,
                                        "repeats": 2},
                                       {"expand_ratio": 4, "kernel_size": 5, "stride": 2, "out_channels": 16,
                                        "repeats": 1}])
    mapping["token_learner"].update(hidden_dim=16)
    mapping["transformer"].update(num_layers=2, num_heads=2, head_dim=24, ffn_dim=40, width=40)
    return from_mapping(RT1Config, mapping)


def randomised(model: RT1, seed: int = 0) -> RT1:
    """Every tensor moved off its initial value (BN statistics, FiLM and zero biases included), so no mapping error
    hides behind a zero or a one; weights keep their initial scale, so the frames still reach the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var") or name.endswith("input_variance"):
                tensor.copy_(0.5 + noise.abs())
            elif tensor.dim() > 1 and "projection" not in name:
                tensor.mul_(1 + 0.1 * noise)
            else:
                tensor.add_(0.1 * noise)
    return model.eval()


@pytest.fixture(scope="session")
def small_official_model(small_official_config) -> RT1:
    torch.manual_seed(0)
    return randomised(RT1(small_official_config))
