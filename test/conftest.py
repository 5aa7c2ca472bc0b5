"""Shared fixtures: small model configs and a fixed action space, so the default test run stays fast."""
from __future__ import annotations

import pytest
import torch

from rt1_ros.model.action_tokenizer import ActionSpaceConfig, ActionTokenizer
from rt1_ros.model.rt1 import RT1, RT1Config


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
    (`rt1_ros.runtime.inference_optimisation.input_dependence`)."""
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
