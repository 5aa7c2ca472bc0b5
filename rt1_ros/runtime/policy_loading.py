"""Build a ready-to-step `RT1Policy` from the node's parameters: a checkpoint, or an untrained model of a named
size."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.model.checkpoint import read_checkpoint_config
from rt1_ros.model.pretrained_backbone import load_imagenet_backbone
from rt1_ros.model.rt1 import MODEL_SIZES
from rt1_ros.model.text_encoder import TextEncoderWidthError, shared_text_encoder
from rt1_ros.configuration.parameter_spec import parameter
from rt1_ros.policy import RT1Policy, RT1PolicyConfig, resolve_device
from rt1_ros.inference.options import InferenceOptions

UNTRAINED_BANNER = ("UNTRAINED POLICY: no checkpoint given, RT-1 is freshly initialised and its actions are "
                    "meaningless. Train one (docs/training.md) and pass checkpoint:=<dir>.")

SHIPPED_MODEL = "models/rt1_sim"  # the simulator policy committed with the package (docs/training.md "The recipe")


def shipped_model_path() -> Path | None:
    """The committed simulator checkpoint: in this source tree (dev set-up, ``pip install -e``), else in the
    package's ament share directory (colcon install: CMake installs it to share/rt1_ros/models/rt1_sim)."""
    candidates = [Path(__file__).resolve().parents[2] / SHIPPED_MODEL]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory("rt1_ros")) / SHIPPED_MODEL)
        except (PackageNotFoundError, ValueError):
            pass
    except ImportError:
        pass
    return next((c for c in candidates if (c / "model.safetensors").is_file()), None)


def checkpoint_or_shipped(checkpoint: str | None) -> str:
    """``checkpoint`` when given, else the shipped simulator checkpoint; ValueError when neither exists."""
    if checkpoint:
        return checkpoint
    shipped = shipped_model_path()
    if shipped is None:
        raise ValueError(f"no --checkpoint given and the shipped {SHIPPED_MODEL} is missing (make model builds it)")
    return str(shipped)


@dataclass(frozen=True)
class PolicySource:
    """Which model to load and how to run it; each field is also a read-only rt1_node ROS parameter (docs/parameters.md
    "Parameters"), declared from the description and choices given here."""

    model_size: str = parameter("paper", "RT-1 size from config/model.yaml when no checkpoint is given",
                                choices=MODEL_SIZES, read_only=True)
    checkpoint: str = parameter("", "checkpoint directory (model.safetensors + config.yaml); empty = untrained",
                                read_only=True)
    backbone_weights: str = parameter("", "ImageNet EfficientNet weights (.safetensors/.pth) for an untrained model",
                                      read_only=True)
    device: str = parameter("auto", "inference device", choices=("auto", "cuda", "cpu"), read_only=True)
    half_precision: bool = parameter(False, "fp16 inference on CUDA (ignored on CPU)", read_only=True)
    text_encoder: str = parameter("bundled:all-MiniLM-L6-v2", "instruction encoder: a SentenceTransformer name or "
                                  "path (bundled:all-MiniLM-L6-v2 works offline), use:<dir> (Universal Sentence "
                                  "Encoder, tensorflow_hub) or embeddings:<.npz or .yaml> (precomputed); its width "
                                  "must be the checkpoint's", read_only=True)
    action_space_file: str = parameter("", "action space YAML (ranges, and each dimension's scale/offset onto the "
                                       "robot); empty = the checkpoint's, else config/action_space.yaml; with a "
                                       "checkpoint only scale/offset may differ from its own", read_only=True)
    seed: int = parameter(0, "seed of an untrained model's initialisation", range=(0, 2**31 - 1), read_only=True)
    # How the network runs (docs/performance.md): on an x86 CPU an ONNX export by default (inference_backend auto:
    # ONNX Runtime for small frames, OpenVINO for the paper size; the same tokens as torch, 2-2.5x faster per step),
    # else torch with batch norm folded and channels-last; CUDA stays torch fp32 until `rt1-bench` has been run on
    # the target GPU. The fields declared with ros_parameter are rt1_node parameters (inference_backend,
    # inference_threads, inference_export_cache).
    inference: InferenceOptions = InferenceOptions()


@dataclass
class LoadedPolicy:
    policy: RT1Policy
    action_space: ActionSpaceConfig
    trained: bool
    description: str


def load_policy(source: PolicySource) -> LoadedPolicy:
    """Raises CheckpointError / BackboneWeightsError / ConfigError with a message naming the file at fault, and
    TextEncoderWidthError naming the text encoder and the model when their widths differ."""
    device = resolve_device(source.device)
    if source.checkpoint:
        # The config first: a text encoder or an action space that does not fit is refused before any weights
        # load or export.
        model_config, checkpoint_space, extra = read_checkpoint_config(source.checkpoint)
        description = f"checkpoint {Path(source.checkpoint).resolve()} (step {extra.get('step', '?')})"
    else:
        untrained_config = RT1PolicyConfig.named(source.model_size)
        model_config = untrained_config.model
        description = f"untrained '{source.model_size}' model (seed {source.seed})"
    # The network fixes the instruction width (512 for Google's released weights, which take USE embeddings).
    width = model_config.text_embedding_dim
    try:
        encoder = shared_text_encoder(source.text_encoder, width)
    except TextEncoderWidthError as exc:
        raise TextEncoderWidthError(f"{exc}: the {description} takes {width}-d instruction embeddings; set "
                                    "text_encoder to a source of that width") from exc
    file_space = ActionSpaceConfig.from_yaml(source.action_space_file) if source.action_space_file else None
    if file_space is not None and source.checkpoint:
        differences = checkpoint_space.decoding_differences(file_space)
        if differences:
            # The checkpoint's tokens are bins over the ranges it was trained on; other ranges would silently
            # rescale every action. A robot maps them with scale and offset instead.
            raise ValueError(f"action_space_file {source.action_space_file} decodes the {description}'s tokens "
                             f"differently: {'; '.join(differences)}. Keep its num_bins, rounding and ranges and map "
                             "onto the robot with each dimension's scale and offset")
    if source.checkpoint:
        policy = RT1Policy.from_pretrained(source.checkpoint, None, device, source.inference,
                                           source.half_precision)
        trained = True
    else:
        torch.manual_seed(source.seed)
        policy = RT1Policy(untrained_config)
        trained = False
        if source.backbone_weights:
            load_imagenet_backbone(policy.model.image_encoder, source.backbone_weights)
            description += f" with ImageNet backbone {source.backbone_weights}"
    policy.embed_text = encoder.encode
    action_space = file_space or policy.config.action_space
    if file_space is not None and not trained:  # an untrained network decodes into the file's ranges
        policy = RT1Policy(replace(policy.config, action_space=file_space), encoder.encode, model=policy.model)
    if not trained:
        policy.prepare_inference(device, source.inference, source.half_precision)
    description += f" on {device} ({policy.inference_options.describe(device)})"
    # A trained policy decodes as its checkpoint says (the file may only differ in scale and offset, which the
    # controller applies): its inference path, prepared by from_pretrained, is kept.
    return LoadedPolicy(policy=policy, action_space=action_space, trained=trained,
                        description=description)
