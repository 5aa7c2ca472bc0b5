"""What a training run starts from, settled before any step: the model and action space (the config's size, a
resumed run's, or a fine-tuned checkpoint's, with a robot's calibration), the instructions' embeddings from the
configured text encoder, and the wordings a simulator episode's task may be reworded with. Each refusal is a
SystemExit naming what to change, raised before anything is trained or written."""
from __future__ import annotations

import functools
import sys
from dataclasses import replace
from pathlib import Path

import torch

from rt1_ros.data.dataset import Episode
from rt1_ros.model.action_tokenizer import ActionSpaceConfig
from rt1_ros.model.checkpoint import read_checkpoint_config
from rt1_ros.model.rt1 import RT1Config
from rt1_ros.model.text_encoder import TextEncoderWidthError, UnknownInstructionError, shared_text_encoder
from rt1_ros.training.config import TrainConfig


def model_spec(config: TrainConfig, resume_from: Path | None) -> tuple[RT1Config, ActionSpaceConfig]:
    """The model and action space the config names; a resumed run keeps those it was started with, a fine-tuned
    one those of its init_checkpoint. An action_space_file replaces the action space; over a checkpoint's it may
    change only scale and offset (the robot's calibration), as rt1_node's may."""
    model_config, action_space, from_checkpoint = _named_model_spec(config, resume_from)
    if not config.action_space_file:
        return model_config, action_space
    try:
        calibrated = ActionSpaceConfig.from_yaml(config.action_space_file)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"action_space_file {config.action_space_file}: {exc}") from exc
    differences = action_space.decoding_differences(calibrated) if from_checkpoint else []
    if differences:
        raise SystemExit(f"action_space_file {config.action_space_file} decodes the checkpoint's tokens "
                         f"differently: {'; '.join(differences)}. Keep its num_bins, rounding and ranges and "
                         "change only each dimension's scale and offset")
    return model_config, calibrated


def _named_model_spec(config: TrainConfig, resume_from: Path | None) -> tuple[RT1Config, ActionSpaceConfig, bool]:
    """-> model config, action space, whether they came from a checkpoint."""
    if resume_from is not None:
        model_config, action_space, _ = read_checkpoint_config(resume_from)
        return model_config, action_space, True
    if config.init_checkpoint:
        if not (Path(config.init_checkpoint) / "model.safetensors").is_file():
            raise SystemExit(f"init_checkpoint {config.init_checkpoint}: no model.safetensors there")
        model_config, action_space, _ = read_checkpoint_config(config.init_checkpoint)
        if config.image_size and config.image_size != model_config.image_size:
            print(f"image_size {config.image_size} ignored: fine-tuning keeps init_checkpoint's "
                  f"{model_config.image_size} px", file=sys.stderr)
        return model_config, action_space, True
    action_space = ActionSpaceConfig.from_yaml()
    model_config = RT1Config.from_yaml(config.model_size)
    if config.image_size:
        model_config = replace(model_config, image_size=config.image_size)
    if config.action_readout:
        try:
            model_config = replace(model_config, action_readout=config.action_readout)
        except ValueError as exc:
            raise SystemExit(f"action_readout {config.action_readout!r}: {exc}") from exc
    return model_config, action_space, False


def embed_instructions(text_encoder: str, width: int, instructions: list[str]) -> torch.Tensor:
    """(I,E) embeddings of ``instructions`` with the text encoder ``text_encoder`` names; SystemExit when its width
    is not the network's ``width`` or an instruction is missing from a precomputed map (every missing one named)."""
    try:
        encoder = shared_text_encoder(text_encoder, width)
    except TextEncoderWidthError as exc:
        raise SystemExit(f"text_encoder: {exc}. The model takes {width}-d instruction embeddings; a converted "
                         "release takes those of the Universal Sentence Encoder it was trained with: "
                         "use:<directory of universal-sentence-encoder-large/5>, or embeddings:<file.npz|.yaml> "
                         "precomputed with it (docs/training.md)") from exc
    try:
        return encoder.encode(instructions)
    except UnknownInstructionError as exc:
        raise SystemExit(f"text_encoder: the dataset's instructions must all be in the map: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _sim_config():
    """config/sim.yaml, parsed once: task_wordings runs for every episode of a dataset (50 ms a parse)."""
    from rt1_ros.sim.config import SimConfig

    return SimConfig.from_yaml()


def task_wordings(episode: Episode, paraphrases: bool = False) -> tuple[str, ...]:
    """Every training wording of a simulator episode's task (config/sim.yaml templates, and its family's paraphrases
    with ``paraphrases``), for `reword_instructions`; () for other data, and for episodes the generator worded with
    templates training must not see."""
    from rt1_ros.sim.scene import all_object_specs
    from rt1_ros.sim.tasks import training_wordings
    from rt1_ros.sim.tasks.receptacles import RECEPTACLE_FAMILIES

    extra = episode.info.extra or {}
    target, condition = extra.get("target"), extra.get("condition")
    config = _sim_config()
    if not target or condition not in config.condition_names or \
            config.condition(condition).instructions != "training":
        return ()
    colour, _, shape = target.partition("_")
    direction = extra.get("direction")
    if episode.info.task_family == "push" and direction is None:  # recorded only in the instruction's words
        direction = "left" if "left" in episode.info.instruction.split() else "right"
    receptacle = extra.get("receptacle")
    if episode.info.task_family in RECEPTACLE_FAMILIES and receptacle is None:  # older data: only in the words
        words = episode.info.instruction.split()
        receptacle = next((kind.name for kind in config.receptacles.kinds if kind.name in words), None)
    reference = None
    if extra.get("reference"):
        reference = next((spec for spec in all_object_specs(config) if spec.name == extra["reference"]), None)
    if "{reference_" in "".join(config.tasks.family(episode.info.task_family).templates) and reference is None:
        return ()  # the second object is not recorded: keep the episode's own wording
    drawer = extra.get("drawer")
    if drawer is None and episode.info.task_family == "place_into_drawer":
        return ()  # the drawer is not recorded: keep the episode's own wording
    return training_wordings(config, episode.info.task_family, colour, shape, direction, reference=reference,
                             receptacle=receptacle, drawer=drawer, paraphrases=paraphrases)
