"""RT1PolicyConfig: what defines a policy: the network (RT1Config), the action space its tokens decode into, and
how training shapes its loss. A checkpoint's config.yaml holds the first two (rt1_ros.model.checkpoint)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.model.rt1 import RT1Config
from rt1_ros.policy.loss import LossConfig


@dataclass(frozen=True)
class RT1PolicyConfig:
    model: RT1Config
    action_space: ActionSpaceConfig
    loss: LossConfig = field(default_factory=LossConfig)

    @classmethod
    def named(cls, model_size: str, image_size: int = 0, **fields) -> "RT1PolicyConfig":
        """A named size from config/model.yaml (``image_size`` > 0 overrides its input side) with the action space
        of config/action_space.yaml."""
        model = RT1Config.from_yaml(model_size)
        if image_size:
            model = replace(model, image_size=image_size)
        return cls(model=model, action_space=ActionSpaceConfig.from_yaml(), **fields)
