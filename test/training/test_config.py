"""TrainConfig: --set overrides are type-checked like the YAML file."""
from __future__ import annotations

import pytest

from rt1_ros.training.config import TrainConfig, parse_overrides


def test_overrides_are_type_checked():
    config = parse_overrides(TrainConfig(), ["total_steps=7", "families=[pick]"])
    assert config.total_steps == 7 and config.families == ("pick",)
    with pytest.raises(ValueError):
        parse_overrides(TrainConfig(), ["no_such_key=1"])
