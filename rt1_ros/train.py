"""rt1-train: behaviour cloning of RT-1 on an episode dataset (rt1_ros.data.dataset).

    rt1-train --data data/sim --output checkpoints/tiny_sim                # config/train.yaml defaults
    rt1-train --output checkpoints/tiny_sim --resume                       # continue from checkpoints/.../latest
    rt1-train --output ... --set total_steps=200 time_budget_min=0 learning_rate=3e-4
    torchrun --nproc_per_node=4 -m rt1_ros.train --output ...              # multi-GPU (DistributedDataParallel)

Objective: cross-entropy per action dimension (256 bins; the mode dimension over its 3 valid classes only),
averaged over the 11 dimensions. AdamW, linear warm-up then cosine decay, gradient-norm clipping, autocast on CUDA.

Training windows follow inference exactly: 6 frames ending at the target step, front-padded by repeating frame 0
(`pad_window_indices`), frames resized with `resize_for_model`. The frozen sentence encoder runs once per distinct
instruction before training; only the (B,384) embeddings enter the loop.

Efficiency: a batch is a few runs of consecutive steps. Each frame of a run is encoded once by the backbone and its
tokens are gathered into every window that contains it (the tokens of a frame depend only on that frame and the
instruction, which is what the node's frame-token cache relies on too). One crop and one colour jitter per run, as a
real camera would drift, not flicker.

Output directory::

    latest/   model.safetensors + config.yaml (what rt1_node loads) + optimizer.safetensors + trainer_state.json
    best/     the same, for the lowest validation loss
    metrics.csv, train_config.yaml

No pickle anywhere: optimizer tensors go to safetensors, the rest of its state (param groups, step) to JSON.

Multi-GPU: under torchrun (WORLD_SIZE > 1) each process takes one GPU (LOCAL_RANK), wraps the model in
DistributedDataParallel (NCCL; gloo on CPU) and draws its own batches (seeded by rank); rank 0 validates, logs and
writes checkpoints. The batch given in the config is per process. BatchNorm statistics stay per process.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from rt1_ros.data.dataset import Episode, EpisodeDataset
from rt1_ros.model.action_tokenizer import CONTINUOUS_DIMS, MODE_DIM, NUM_ACTION_DIMS, ActionSpaceConfig, \
    ActionTokenizer
from rt1_ros.model.checkpoint import load_weights_into, read_checkpoint_config, save_pretrained
from rt1_ros.model.rt1 import RT1, RT1Config
from rt1_ros.runtime.frame_history import pad_window_indices
from rt1_ros.runtime.image_decoding import resize_for_model
from rt1_ros.yaml_config import config_dir, from_mapping, load_dataclass, to_mapping

OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_STATE_FILE = "trainer_state.json"
AUXILIARY_HEAD_FILE = "auxiliary_head.safetensors"  # training only: not part of the policy the node loads


@dataclass(frozen=True)
class TrainConfig:
    model_size: str = "tiny"
    image_size: int = 0
    data: str = "data/sim"
    families: tuple[str, ...] = ()
    successful_only: bool = True
    val_fraction: float = 0.1
    segments_per_batch: int = 5
    segment_length: int = 12
    total_steps: int = 3000
    time_budget_min: float = 0.0
    learning_rate: float = 1e-3
    min_learning_rate_ratio: float = 0.05
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip_norm: float = 1.0
    label_smoothing: float = 0.0
    target_sigma_bins: float = 0.0
    auxiliary_state_weight: float = 0.0
    crop_scale_min: float = 0.88
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
        if self.target_sigma_bins < 0.0:
            raise ValueError("target_sigma_bins must be >= 0")
        if self.auxiliary_state_weight < 0.0:
            raise ValueError("auxiliary_state_weight must be >= 0")
        if self.mixed_precision not in ("bfloat16", "float16", "none"):
            raise ValueError("mixed_precision must be bfloat16, float16 or none")

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> "TrainConfig":
        return load_dataclass(cls, path or config_dir() / "train.yaml")


def parse_overrides(config: TrainConfig, assignments: list[str]) -> TrainConfig:
    """``key=value`` strings (values parsed as YAML) applied over ``config``, type-checked like the YAML file."""
    mapping = to_mapping(config)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise ValueError(f"override '{assignment}' is not key=value")
        mapping[key.strip()] = yaml.safe_load(value)
    return from_mapping(TrainConfig, mapping, where="train config")


# ---------------------------------------------------------------------------------------------------------- data
@dataclass
class EpisodeArrays:
    frames: np.ndarray  # (T,H,W,3) uint8, memory-mapped
    tokens: np.ndarray  # (T,11) int64
    instruction_index: int
    family: str
    scene_state: np.ndarray | None = None  # (T,S) float32 privileged state, when the dataset recorded it


@dataclass
class Batch:
    images: torch.Tensor  # (F,3,S,S) float in [0,1]: every distinct frame the batch needs
    frame_instruction: torch.Tensor  # (F,) long: row of the instruction table for each frame
    windows: torch.Tensor  # (N,T) long: rows of `images` making each target's window, oldest first
    targets: torch.Tensor  # (N,11) long
    families: list[str]  # (N,)
    scene_state: torch.Tensor | None = None  # (N,S) float, rows of NaN where an episode has none


def split_episodes(episodes: list[Episode], val_fraction: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    """Hold out whole episodes, the same fraction of each family, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for family in sorted({e.info.task_family for e in episodes}):
        members = [e for e in episodes if e.info.task_family == family]
        order = rng.permutation(len(members))
        held_out = int(round(len(members) * val_fraction)) if len(members) > 1 else 0
        val += [members[i] for i in order[:held_out]]
        train += [members[i] for i in order[held_out:]]
    return train, val


class WindowSampler:
    """Builds batches of windows from episodes, with the inference-time padding and resize."""

    def __init__(self, episodes: list[EpisodeArrays], num_frames: int, image_size: int, config: TrainConfig) -> None:
        if not episodes:
            raise ValueError("no episodes to sample from")
        self.episodes = episodes
        self.num_frames = num_frames
        self.image_size = image_size
        self.config = config
        lengths = np.array([len(e.tokens) for e in episodes], dtype=np.float64)
        # Episodes drawn in proportion to their length (plus the runs overhanging either end) covers every step,
        # first and last (terminate) included, equally often.
        weights = lengths + config.segment_length - 1
        self._probabilities = weights / weights.sum()
        widths = {e.scene_state.shape[1] for e in episodes if e.scene_state is not None}
        if len(widths) > 1:
            raise ValueError(f"episodes disagree on the scene state's width: {sorted(widths)}")
        self.scene_state_width = widths.pop() if widths else 0

    def sample(self, rng: np.random.Generator) -> Batch:
        """A training batch: random runs, with crop and colour augmentation."""
        runs = []
        length = self.config.segment_length
        for index in rng.choice(len(self.episodes), size=self.config.segments_per_batch, p=self._probabilities):
            steps = len(self.episodes[index].tokens)
            start = int(rng.integers(-(length - 1), steps))
            runs.append((int(index), max(0, start), min(steps, start + length)))
        return self._assemble(runs, rng)

    def sequential(self, max_targets: int = 64):
        """Every step of every episode once, no augmentation: the validation pass."""
        runs: list[tuple[int, int, int]] = []
        count = 0
        for index, episode in enumerate(self.episodes):
            steps = len(episode.tokens)
            for start in range(0, steps, max_targets):
                runs.append((index, start, min(steps, start + max_targets)))
                count += runs[-1][2] - start
                if count >= max_targets:
                    yield self._assemble(runs, None)
                    runs, count = [], 0
        if runs:
            yield self._assemble(runs, None)

    def _assemble(self, runs: list[tuple[int, int, int]], rng: np.random.Generator | None) -> Batch:
        images, frame_instruction, windows, targets, families, states = [], [], [], [], [], []
        offset = 0
        for index, first, end in runs:
            episode = self.episodes[index]
            context_start = max(0, first - self.num_frames + 1)
            frames = self._prepare_frames(np.asarray(episode.frames[context_start:end]), rng)  # (n,3,S,S)
            images.append(frames)
            frame_instruction += [episode.instruction_index] * len(frames)
            for step in range(first, end):
                windows.append([offset + i - context_start for i in pad_window_indices(step, self.num_frames)])
            targets.append(episode.tokens[first:end])
            families += [episode.family] * (end - first)
            if episode.scene_state is not None:
                states.append(np.asarray(episode.scene_state[first:end], dtype=np.float32))
            else:
                states.append(np.full((end - first, self.scene_state_width), np.nan, dtype=np.float32))
            offset += len(frames)
        scene_state = torch.from_numpy(np.concatenate(states)) if self.scene_state_width else None
        return Batch(images=torch.cat(images), frame_instruction=torch.tensor(frame_instruction),
                     windows=torch.tensor(windows), targets=torch.from_numpy(np.concatenate(targets)),
                     families=families, scene_state=scene_state)

    def _prepare_frames(self, frames: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
        """(n,H,W,3) uint8 -> (n,3,S,S) float in [0,1], one crop and one jitter for the whole run."""
        height, width = frames.shape[1:3]
        if rng is not None and self.config.crop_scale_min < 1.0:
            scale = rng.uniform(self.config.crop_scale_min, 1.0)
            crop_h, crop_w = max(1, round(height * scale)), max(1, round(width * scale))
            top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
            frames = frames[:, top:top + crop_h, left:left + crop_w]
        resized = np.stack([resize_for_model(frame, self.image_size) for frame in frames])  # (n,S,S,3)
        images = torch.from_numpy(resized).permute(0, 3, 1, 2).float().div_(255.0)
        if rng is not None:
            images = colour_jitter(images, rng, self.config)
        return images


def colour_jitter(images: torch.Tensor, rng: np.random.Generator, config: TrainConfig) -> torch.Tensor:
    """(n,3,S,S) in [0,1], one random brightness/contrast/saturation change applied to all n frames."""
    brightness = 1.0 + rng.uniform(-config.brightness, config.brightness)
    contrast = 1.0 + rng.uniform(-config.contrast, config.contrast)
    saturation = 1.0 + rng.uniform(-config.saturation, config.saturation)
    images = images * brightness
    gray = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)  # (n,1,S,S)
    images = gray + (images - gray) * saturation
    mean = gray.mean(dim=(2, 3), keepdim=True)
    images = mean + (images - mean) * contrast
    return images.clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------------------------- model
class WindowedRT1(nn.Module):
    """RT-1 over shared frames: encodes each distinct frame once, then runs the transformer per window.

    The whole computation sits in one `forward` so that DistributedDataParallel sees it. ``auxiliary_head``
    (training only, never part of the saved policy) reads the same feature as the action heads and predicts the
    normalised scene state.
    """

    def __init__(self, model: RT1, auxiliary_head: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.auxiliary_head = auxiliary_head

    def forward(self, images: torch.Tensor, frame_text: torch.Tensor,
                windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """images (F,3,S,S), frame_text (F,384), windows (N,T) -> logits (N,11,bins), auxiliary (N,S) or None."""
        conditioning = self.model.embed_instruction(frame_text)  # (F,D)
        tokens = self.model.encode_frame(images, conditioning)  # (F,K,D)
        features = self.model.action_features(tokens[windows])  # (N,T,K,D) -> (N,D)
        auxiliary = self.auxiliary_head(features) if self.auxiliary_head is not None else None
        return self.model.action_head(features), auxiliary


class SceneStateHead(nn.Module):
    """Training-only regression of the privileged scene state (sim target and gripper positions) from the action
    feature. Why: behaviour cloning alone gives the encoder a weak, indirect signal about *where* the named object
    is; regressing its position (and the gripper's) teaches localisation and grounding directly. Targets are
    standardised with the training set's per-column mean and std, kept here as buffers."""

    def __init__(self, dim: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.projection = nn.Linear(dim, len(mean))
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)

    def loss(self, prediction: torch.Tensor, scene_state: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the rows that have a state (NaN rows are episodes without one)."""
        known = ~torch.isnan(scene_state).any(dim=1)
        if not bool(known.any()):
            return prediction.sum() * 0.0
        target = (scene_state[known] - self.mean) / self.std
        return F.mse_loss(prediction[known].float(), target)


def gaussian_bin_targets(targets: torch.Tensor, num_bins: int, sigma_bins: float) -> torch.Tensor:
    """targets (M,) bin indices -> (M,bins) a discretised Gaussian centred on each, summing to 1."""
    bins = torch.arange(num_bins, device=targets.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((bins[None, :] - targets[:, None].float()) / sigma_bins) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def action_loss(logits: torch.Tensor, targets: torch.Tensor, num_modes: int, label_smoothing: float = 0.0,
                target_sigma_bins: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N,11,bins), targets (N,11) -> (mean over dims of the per-dim cross-entropy, per-dim losses (11,)).

    ``target_sigma_bins`` > 0 replaces each continuous dimension's one-hot target by a discretised Gaussian of that
    width (in bins). Why: the bins are ordered (0.4 mm apart for the arm), but a one-hot cross-entropy scores a
    prediction one bin off exactly as wrong as one a hundred bins off, so a few thousand demonstrations give almost
    no signal about *which way* an action is wrong. Decoding is unchanged (argmax)."""
    logits = logits.float()
    continuous_logits = logits[:, :CONTINUOUS_DIMS].flatten(0, 1)  # (N·10,bins)
    continuous_targets = targets[:, :CONTINUOUS_DIMS].flatten()  # (N·10,)
    if target_sigma_bins > 0.0:
        soft = gaussian_bin_targets(continuous_targets, continuous_logits.shape[-1], target_sigma_bins)
        continuous = F.cross_entropy(continuous_logits, soft, reduction="none", label_smoothing=label_smoothing)
    else:
        continuous = F.cross_entropy(continuous_logits, continuous_targets, reduction="none",
                                     label_smoothing=label_smoothing)
    continuous = continuous.view(-1, CONTINUOUS_DIMS).mean(dim=0)  # (10,)
    mode = F.cross_entropy(logits[:, MODE_DIM, :num_modes], targets[:, MODE_DIM], label_smoothing=label_smoothing)
    per_dim = torch.cat([continuous, mode.unsqueeze(0)])  # (11,)
    return per_dim.mean(), per_dim


def predicted_tokens(logits: torch.Tensor, num_modes: int) -> torch.Tensor:
    """(N,11,bins) -> (N,11), the mode by argmax over its valid classes (as ActionTokenizer.tokens_from_logits)."""
    tokens = logits[:, :CONTINUOUS_DIMS].argmax(dim=-1)
    mode = logits[:, MODE_DIM, :num_modes].argmax(dim=-1, keepdim=True)
    return torch.cat([tokens, mode], dim=-1)


def learning_rate_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from the peak to `min_learning_rate_ratio` of it."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    floor = peak * config.min_learning_rate_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# -------------------------------------------------------------------------------------- optimizer state, no pickle
def save_optimizer_state(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Optimizer tensors -> optimizer.safetensors ('state.<param>.<name>'), everything else -> JSON."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, entries in state["state"].items():
        for name, value in entries.items():
            key = f"state.{param_id}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    tmp = directory / (OPTIMIZER_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(directory / OPTIMIZER_FILE)
    (directory / "optimizer.json").write_text(json.dumps({"param_groups": state["param_groups"],
                                                          "scalars": scalars}), encoding="utf-8")


def load_optimizer_state(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(directory / OPTIMIZER_FILE))
    document = json.loads((directory / "optimizer.json").read_text(encoding="utf-8"))
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(document["scalars"].items()):
        _, param_id, name = key.split(".", 2)
        state.setdefault(int(param_id), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": document["param_groups"]})


# ------------------------------------------------------------------------------------------------------- trainer
METRIC_COLUMNS = ["step", "elapsed_s", "lr", "train_loss", "train_token_acc", "targets_per_s", "val_loss",
                  "val_token_acc", "val_arm_step_error_mm", "train_auxiliary_loss", "val_auxiliary_loss"]


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return Distributed(rank=dist.get_rank(), world_size=world_size, local_rank=local_rank)


class Trainer:
    def __init__(self, config: TrainConfig, output: Path, resume: bool = False, progress: bool = True,
                 device: str = "auto") -> None:
        self.config = config
        self.output = Path(output)
        self.progress = progress
        self.dist = setup_distributed()
        if device == "auto":
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(config.num_threads or max(1, len(os.sched_getaffinity(0))))
        torch.manual_seed(config.seed)

        self.action_space = ActionSpaceConfig.from_yaml()
        self.tokenizer = ActionTokenizer(self.action_space)
        model_config = RT1Config.from_yaml(config.model_size)
        if config.image_size:
            model_config = replace(model_config, image_size=config.image_size)
        self.step = 0
        self.elapsed_s = 0.0
        self.best_val_loss = math.inf
        latest = self.output / "latest"
        if resume and (latest / TRAINER_STATE_FILE).is_file():
            model_config, self.action_space, _ = read_checkpoint_config(latest)
            self.tokenizer = ActionTokenizer(self.action_space)
        self.model = RT1(model_config).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.num_modes = len(self.action_space.mode_classes)
        spans = [(d.high - d.low) for d in self.action_space.dimensions[:3]]
        self._arm_bin_width_mm = torch.tensor(spans, device=self.device) / (self.action_space.num_bins - 1) * 1000.0

        self._load_data()
        self.auxiliary_head = self._make_auxiliary_head()
        self.optimizer = torch.optim.AdamW(self._parameter_groups(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        if resume:
            self._resume(latest)
        self.windowed: nn.Module = WindowedRT1(self.model, self.auxiliary_head)
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            self.windowed = DistributedDataParallel(self.windowed, device_ids=ids)
        self.autocast_dtype = None
        if self.device.type == "cuda" and config.mixed_precision != "none":
            self.autocast_dtype = torch.bfloat16 if config.mixed_precision == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)

    def _make_auxiliary_head(self) -> SceneStateHead | None:
        if self.config.auxiliary_state_weight <= 0.0:
            return None
        states = [e.scene_state for e in self.train_sampler.episodes if e.scene_state is not None]
        if not states:
            raise SystemExit(f"auxiliary_state_weight > 0 needs episodes with scene_state.npy; {self.config.data} "
                             "has none (rt1-generate records it)")
        stacked = torch.from_numpy(np.concatenate(states))  # (steps,S)
        # Columns that never vary (e.g. an object's height on the table) would divide by ~0: floor the std.
        std = stacked.std(dim=0).clamp_min(1e-2)
        return SceneStateHead(self.model.config.embed_dim, stacked.mean(dim=0), std).to(self.device)

    def _trainable_named_parameters(self):
        yield from self.model.named_parameters()
        if self.auxiliary_head is not None:
            yield from (("auxiliary_head." + n, p) for n, p in self.auxiliary_head.named_parameters())

    def _parameter_groups(self) -> list[dict]:
        # No weight decay on norms, biases and positional embeddings: decaying them only fights the data.
        decay, no_decay = [], []
        for name, parameter in self._trainable_named_parameters():
            (no_decay if parameter.ndim <= 1 or "position" in name else decay).append(parameter)
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    def _load_data(self) -> None:
        config = self.config
        dataset = EpisodeDataset(config.data, families=config.families or None,
                                 successful_only=config.successful_only)
        if len(dataset) == 0:
            raise SystemExit(f"no usable episodes in {config.data} (families {list(config.families) or 'all'})")
        train, val = split_episodes(list(dataset), config.val_fraction, config.seed)
        instructions = sorted({e.info.instruction for e in dataset})
        # The frozen encoder runs once per distinct instruction; the loop only indexes this table. (I,384)
        from rt1_ros.runtime.policy_loading import shared_text_encoder

        self.text_table = shared_text_encoder(config.text_encoder).encode(instructions).to(self.device)
        row = {text: i for i, text in enumerate(instructions)}

        def arrays(episode: Episode) -> EpisodeArrays:
            return EpisodeArrays(frames=episode.frames, tokens=self.tokenizer.encode(episode.actions),
                                 instruction_index=row[episode.info.instruction], family=episode.info.task_family,
                                 scene_state=episode.scene_state if config.auxiliary_state_weight > 0 else None)

        size = self.model.config.image_size
        frames = self.model.config.num_frames
        self.train_sampler = WindowSampler([arrays(e) for e in train], frames, size, config)
        self.val_sampler = WindowSampler([arrays(e) for e in val], frames, size, config) if val else None
        # (family, target) pairs the generator held out of the data: rt1-eval reports them separately.
        held_out = sorted({pair for e in dataset for pair in (e.info.extra or {}).get("held_out") or ()})
        self.dataset_summary = {"episodes": len(dataset), "train_episodes": len(train), "val_episodes": len(val),
                                "train_steps": sum(e.info.num_steps for e in train),
                                "val_steps": sum(e.info.num_steps for e in val), "instructions": len(instructions),
                                "families": sorted({e.info.task_family for e in dataset}),
                                "held_out_targets": held_out}

    def _to_device(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        images = batch.images.to(self.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        frame_text = self.text_table[batch.frame_instruction.to(self.device)]  # (F,384)
        return images, frame_text, batch.windows.to(self.device), batch.targets.to(self.device)

    def _auxiliary_loss(self, prediction: torch.Tensor | None, batch: Batch) -> torch.Tensor | None:
        if self.auxiliary_head is None or prediction is None or batch.scene_state is None:
            return None
        return self.auxiliary_head.loss(prediction, batch.scene_state.to(self.device))

    def _progress_fraction(self) -> float:
        by_steps = self.step / self.config.total_steps
        if self.config.time_budget_min > 0:
            return max(by_steps, self.elapsed_s / (self.config.time_budget_min * 60.0))
        return by_steps

    def train_step(self, rng: np.random.Generator) -> tuple[float, float, int, float | None]:
        self.windowed.train()
        batch = self.train_sampler.sample(rng)
        images, frame_text, windows, targets = self._to_device(batch)
        lr = learning_rate_at(self.config, self.step, self._progress_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            logits, auxiliary = self.windowed(images, frame_text, windows)  # (N,11,bins), (N,S) or None
        loss, _ = action_loss(logits, targets, self.num_modes, self.config.label_smoothing,
                              self.config.target_sigma_bins)
        auxiliary_loss = self._auxiliary_loss(auxiliary, batch)
        if auxiliary_loss is not None:
            loss = loss + self.config.auxiliary_state_weight * auxiliary_loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_([p for _, p in self._trainable_named_parameters()], self.config.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        accuracy = (predicted_tokens(logits.detach(), self.num_modes) == targets).float().mean().item()
        return loss.item(), accuracy, len(targets), auxiliary_loss.item() if auxiliary_loss is not None else None

    @torch.no_grad()
    def validate(self) -> dict:
        """Loss and exact-token accuracy per dimension (and per family) over every held-out step."""
        if self.val_sampler is None:
            return {}
        self.model.eval()
        total_loss, count = 0.0, 0
        auxiliary_total, auxiliary_count = 0.0, 0
        arm_error_sum, arm_error_count = 0.0, 0
        correct = torch.zeros(NUM_ACTION_DIMS)
        family_correct: dict[str, list[float]] = {}
        for batch in self.val_sampler.sequential():
            images, frame_text, windows, targets = self._to_device(batch)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                logits, auxiliary = WindowedRT1(self.model, self.auxiliary_head)(images, frame_text, windows)
            loss, _ = action_loss(logits, targets, self.num_modes)
            auxiliary_loss = self._auxiliary_loss(auxiliary, batch)
            if auxiliary_loss is not None:
                auxiliary_total += auxiliary_loss.item() * len(targets)
                auxiliary_count += len(targets)
            predicted = predicted_tokens(logits, self.num_modes)
            hits = (predicted == targets).float().cpu()  # (N,11)
            arm_steps = targets[:, MODE_DIM] == self.action_space.mode_index("arm")
            arm_error_bins = (predicted[arm_steps, :3] - targets[arm_steps, :3]).abs().float()  # (n,3)
            arm_error_sum += (arm_error_bins * self._arm_bin_width_mm).norm(dim=1).sum().item()
            arm_error_count += int(arm_steps.sum())
            total_loss += loss.item() * len(targets)
            count += len(targets)
            correct += hits.sum(dim=0)
            for family, row in zip(batch.families, hits):
                family_correct.setdefault(family, [0.0, 0])
                family_correct[family][0] += row.mean().item()
                family_correct[family][1] += 1
        per_dim = correct / count
        metrics = {"val_loss": total_loss / count, "val_token_acc": per_dim.mean().item()}
        if auxiliary_count:
            metrics["val_auxiliary_loss"] = auxiliary_total / auxiliary_count
        if arm_error_count:
            # The decoded arm step's distance from the demonstration's, over arm-mode steps: a closeness the exact
            # token accuracy (one 0.4 mm bin) cannot show.
            metrics["val_arm_step_error_mm"] = arm_error_sum / arm_error_count
        metrics.update({f"val_acc_{name}": per_dim[i].item() for i, name in enumerate(self.action_space.names)})
        metrics.update({f"val_acc_family_{f}": c / n for f, (c, n) in sorted(family_correct.items())})
        return metrics

    def save(self, name: str, metrics: dict) -> Path:
        directory = self.output / name
        extra = {"step": self.step, "elapsed_s": round(self.elapsed_s, 1), "train_config": to_mapping(self.config),
                 "dataset": self.dataset_summary, "metrics": metrics}
        save_pretrained(self.model, directory, self.action_space, extra=json.loads(json.dumps(extra)))
        save_optimizer_state(self.optimizer, directory)
        if self.auxiliary_head is not None:
            from safetensors.torch import save_file

            save_file({k: v.detach().cpu().contiguous() for k, v in self.auxiliary_head.state_dict().items()},
                      str(directory / AUXILIARY_HEAD_FILE))
        state = {"step": self.step, "elapsed_s": self.elapsed_s, "best_val_loss": self.best_val_loss,
                 "grad_scale": self.scaler.get_scale() if self.scaler.is_enabled() else None}
        (directory / TRAINER_STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        return directory

    def _resume(self, directory: Path) -> None:
        if not (directory / TRAINER_STATE_FILE).is_file():
            print(f"no checkpoint to resume in {directory}; starting fresh", file=sys.stderr)
            return
        load_weights_into(self.model, directory)
        if self.auxiliary_head is not None:
            from safetensors.torch import load_file

            if not (directory / AUXILIARY_HEAD_FILE).is_file():
                raise SystemExit(f"{directory} was trained without the auxiliary head; resume with "
                                 "auxiliary_state_weight=0 or start a new run")
            self.auxiliary_head.load_state_dict(load_file(str(directory / AUXILIARY_HEAD_FILE)))
        load_optimizer_state(self.optimizer, directory)
        state = json.loads((directory / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        self.step, self.elapsed_s = int(state["step"]), float(state["elapsed_s"])
        self.best_val_loss = float(state["best_val_loss"]) if state["best_val_loss"] is not None else math.inf
        if self.dist.is_main:
            print(f"resumed from {directory} at step {self.step} ({self.elapsed_s / 60:.1f} min trained)")

    def run(self) -> dict:
        from tqdm import tqdm

        config = self.config
        main = self.dist.is_main
        if main:
            self.output.mkdir(parents=True, exist_ok=True)
            (self.output / "train_config.yaml").write_text(yaml.safe_dump(to_mapping(config), sort_keys=False))
            print(f"data {config.data}: {self.dataset_summary}; model {config.model_size} "
                  f"{self.model.config.image_size} px, {sum(p.numel() for p in self.model.parameters()):,} parameters "
                  f"on {self.device} (world size {self.dist.world_size})")
        metrics_path = self.output / "metrics.csv"
        val_columns = [f"val_acc_{n}" for n in self.action_space.names]
        new_file = not metrics_path.exists()
        csv_file = open(metrics_path, "a", newline="") if main else None
        writer = csv.DictWriter(csv_file, fieldnames=METRIC_COLUMNS + val_columns, extrasaction="ignore") \
            if csv_file else None
        if writer and new_file:
            writer.writeheader()
        bar = tqdm(initial=self.step, total=config.total_steps, desc="train", unit="step",
                   disable=not (self.progress and main))
        losses, accuracies, auxiliary_losses, targets_seen = [], [], [], 0
        window_started = time.perf_counter()
        last = time.perf_counter()
        metrics: dict = {}
        try:
            while self._progress_fraction() < 1.0:
                rng = np.random.default_rng([config.seed, self.step, self.dist.rank])
                loss, accuracy, targets, auxiliary_loss = self.train_step(rng)
                if auxiliary_loss is not None:
                    auxiliary_losses.append(auxiliary_loss)
                now = time.perf_counter()
                self.elapsed_s += now - last
                last = now
                self.step += 1
                losses.append(loss)
                accuracies.append(accuracy)
                targets_seen += targets
                bar.update(1)
                finished = self._progress_fraction() >= 1.0
                if main and (self.step % config.log_every == 0 or finished):
                    rate = targets_seen / max(1e-9, now - window_started)
                    row = {"step": self.step, "elapsed_s": round(self.elapsed_s, 1),
                           "lr": self.optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(losses)),
                           "train_token_acc": float(np.mean(accuracies)), "targets_per_s": round(rate, 1)}
                    if auxiliary_losses:
                        row["train_auxiliary_loss"] = float(np.mean(auxiliary_losses))
                    bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_token_acc']:.3f}",
                                    tps=f"{rate:.0f}")
                    writer.writerow(row)
                    csv_file.flush()
                    losses, accuracies, auxiliary_losses, targets_seen = [], [], [], 0
                    window_started = time.perf_counter()
                if main and (self.step % config.eval_every == 0 or finished):
                    metrics = self.validate()
                    if metrics:
                        writer.writerow({"step": self.step, "elapsed_s": round(self.elapsed_s, 1), **metrics})
                        csv_file.flush()
                        bar.write(f"step {self.step}: val loss {metrics['val_loss']:.4f}, token acc "
                                  f"{metrics['val_token_acc']:.3f} " + " ".join(
                                      f"{k[len('val_acc_family_'):]}={v:.3f}" for k, v in metrics.items()
                                      if k.startswith("val_acc_family_")))
                        if metrics["val_loss"] < self.best_val_loss:
                            self.best_val_loss = metrics["val_loss"]
                            self.save("best", metrics)
                    last = time.perf_counter()  # validation time is not training time
                if main and (self.step % config.checkpoint_every == 0 or finished):
                    self.save("latest", metrics)
                    if self.val_sampler is None:
                        self.save("best", metrics)
                    last = time.perf_counter()
        finally:
            bar.close()
            if csv_file:
                csv_file.close()
        if self.dist.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
        return {"step": self.step, "elapsed_s": self.elapsed_s, "best_val_loss": self.best_val_loss, **metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="training YAML (default config/train.yaml)")
    parser.add_argument("--data", default=None, help="dataset directory (overrides the config's `data`)")
    parser.add_argument("--output", required=True, help="run directory for checkpoints and metrics.csv")
    parser.add_argument("--resume", action="store_true", help="continue from <output>/latest if it exists")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = TrainConfig.from_yaml(args.config)
    overrides = list(args.set) + ([f"data={args.data}"] if args.data else [])
    config = parse_overrides(config, overrides)
    trainer = Trainer(config, Path(args.output), resume=args.resume, progress=not args.no_progress,
                      device=args.device)
    result = trainer.run()
    if trainer.dist.is_main:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}, indent=1))
        print(f"node-loadable checkpoint: {Path(args.output) / 'best'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
