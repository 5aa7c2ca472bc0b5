"""TrainConfig: every training setting, loaded strictly from config/train.yaml (whose comments explain each key)
and overridable with ``--set key=value``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rt1_ros.configuration.yaml_config import apply_overrides, config_dir, load_dataclass, load_yaml


@dataclass(frozen=True)
class TrainConfig:
    model_size: str = "tiny"
    image_size: int = 0
    action_readout: str = ""
    backbone_weights: str = ""
    data: str = "data/sim"
    extra_data: tuple[str, ...] = ()
    init_checkpoint: str = ""
    action_space_file: str = ""
    families: tuple[str, ...] = ()
    successful_only: bool = True
    balance_families: bool = False
    val_fraction: float = 0.1
    segments_per_batch: int = 5
    segment_length: int = 12
    total_steps: int = 3000
    time_budget_min: float = 0.0
    learning_rate: float = 1e-3
    backbone_learning_rate_ratio: float = 1.0
    min_learning_rate_ratio: float = 0.05
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip_norm: float = 1.0
    label_smoothing: float = 0.0
    target_sigma_bins: float = 0.0
    auxiliary_state_weight: float = 0.0
    target_cell_weight: float = 0.0
    history_dropout: float = 0.0
    reword_instructions: bool = False
    reword_paraphrases: bool = False
    instruction_noise: float = 0.0
    crop_scale_min: float = 0.88
    crop_padding: tuple[int, int] = (0, 0)
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    log_every: int = 10
    eval_every: int = 100
    checkpoint_every: int = 50
    num_threads: int = 0
    channels_last: bool = True
    mixed_precision: str = "bfloat16"
    seed: int = 0
    text_encoder: str = "bundled:all-MiniLM-L6-v2"

    def __post_init__(self) -> None:
        if self.segment_length < 1 or self.segments_per_batch < 1:
            raise ValueError("segment_length and segments_per_batch must be >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise ValueError("crop_scale_min must be in (0, 1]")
        if len(self.crop_padding) != 2 or min(self.crop_padding) < 0:
            raise ValueError("crop_padding must be [rows, columns], each >= 0")
        if self.target_sigma_bins < 0.0:
            raise ValueError("target_sigma_bins must be >= 0")
        if self.auxiliary_state_weight < 0.0:
            raise ValueError("auxiliary_state_weight must be >= 0")
        if self.target_cell_weight < 0.0:
            raise ValueError("target_cell_weight must be >= 0")
        if self.reword_paraphrases and not self.reword_instructions:
            raise ValueError("reword_paraphrases draws from the rewordings: it needs reword_instructions")
        if not 0.0 <= self.instruction_noise <= 1.0:
            raise ValueError("instruction_noise must be in [0, 1]")
        if not 0.0 <= self.history_dropout <= 1.0:
            raise ValueError("history_dropout must be in [0, 1]")
        if not 0.0 < self.backbone_learning_rate_ratio <= 1.0:
            raise ValueError("backbone_learning_rate_ratio must be in (0, 1]")
        if self.mixed_precision not in ("bfloat16", "float16", "none"):
            raise ValueError("mixed_precision must be bfloat16, float16 or none")

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> "TrainConfig":
        """config/train.yaml by default; a recipe file (rt1-recipe: ``generate:`` and ``train:``) gives its
        ``train:`` section."""
        path = path or config_dir() / "train.yaml"
        return load_dataclass(cls, path, section="train" if "train" in load_yaml(path) else None)


def parse_overrides(config: TrainConfig, assignments: list[str]) -> TrainConfig:
    """``key=value`` strings (values parsed as YAML) applied over ``config``, type-checked like the YAML file."""
    return apply_overrides(config, assignments, where="train config")
