"""TrainConfig: --set overrides are type-checked like the YAML file."""
from __future__ import annotations

import pytest

from rt1_ros.training.config import TrainConfig, parse_overrides


def test_overrides_are_type_checked():
    config = parse_overrides(TrainConfig(), ["total_steps=7", "families=[pick]"])
    assert config.total_steps == 7 and config.families == ("pick",)
    with pytest.raises(ValueError):
        parse_overrides(TrainConfig(), ["no_such_key=1"])


def test_the_release_fine_tuning_config_loads_and_trains_as_released():
    from pathlib import Path

    config = TrainConfig.from_yaml(Path(__file__).resolve().parents[2] / "config" / "finetune_released.yaml")
    assert config.crop_padding == (20, 50) and config.crop_scale_min == 1.0 and config.history_dropout == 0.0
    assert config.text_encoder.startswith("embeddings:") and config.init_checkpoint
    with pytest.raises(ValueError, match="crop_padding"):
        parse_overrides(TrainConfig(), ["crop_padding=[-1, 0]"])
