"""The Trainer: builds the model, the data and the optimizer (or resumes them), then `run` trains.

AdamW, linear warm-up then cosine decay, gradient-norm clipping, autocast on CUDA. The frozen sentence encoder runs
once per distinct instruction before training; only the (B,384) embeddings enter the loop.

Output directory::

    latest/   model.safetensors + config.yaml (what rt1_node loads) + optimizer.safetensors + trainer_state.json
    best/     the same, for the lowest validation loss
    metrics.csv, train_config.yaml

With the training-only heads (rt1_ros.training.objective), latest/ and best/ also hold auxiliary_head.safetensors
and target_cell_head.safetensors (training only: the policy the node loads never contains them).

A converted release (`official`, action_readout action_positions) trains as it was trained: a loss on the 11 action
positions of every frame of each window of T consecutive steps, its truncating tokenizer and bounds, its 256×320
frames and its text encoder's 512-d embeddings (docs/training.md, "Fine-tuning Google's released RT-1").
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from rt1_ros.data.dataset import Episode, EpisodeDataset
from rt1_ros.model.checkpoint import load_weights_into
from rt1_ros.policy import LossConfig, RT1Policy, RT1PolicyConfig
from rt1_ros.policy.modeling import TrainingBatch
from rt1_ros.training.config import TrainConfig
from rt1_ros.training.distributed import setup_distributed
from rt1_ros.training.heads import SceneStateHead, TargetCellHead
from rt1_ros.training.metrics import MetricsLog, TrainWindow, ValidationTally
from rt1_ros.training.objective import HEAD_FILES, HEAD_METRICS, TrainingObjective
from rt1_ros.training.optimizer import learning_rate_at, make_optimizer, set_learning_rate
from rt1_ros.training.optimizer_state import load_optimizer_state, save_optimizer_state
from rt1_ros.training.sampler import Batch, EpisodeArrays, WindowSampler, noisy_instructions, split_episodes
from rt1_ros.training.starting_point import embed_instructions, model_spec, task_wordings
from rt1_ros.configuration.yaml_config import to_mapping

TRAINER_STATE_FILE = "trainer_state.json"
TRAIN_CONFIG_FILE = "train_config.yaml"


def step_random_state(seed: int, step: int, rank: int) -> np.random.Generator:
    """Every random draw of one training step, fixed by (seed, step, rank): the returned generator samples and
    augments the batch, and torch's generator (dropout) is seeded from it. Why: a resumed run continues as the
    uninterrupted one would have, and a multi-process step can be replayed in one process (test_distributed)."""
    rng = np.random.default_rng([seed, step, rank])
    torch.manual_seed(int(rng.integers(2**62)))
    return rng


class Trainer:
    def __init__(self, config: TrainConfig, output: Path, resume: bool = False, progress: bool = True,
                 device: str = "auto") -> None:
        self.config = config
        self.output = Path(output)
        self.progress = progress
        self.dist = setup_distributed()
        self.device = self._select_device(device)
        torch.manual_seed(config.seed)

        self.step = 0
        self.elapsed_s = 0.0
        self.best_val_loss = math.inf
        latest = self.output / "latest"
        resuming = resume and (latest / TRAINER_STATE_FILE).is_file()
        model_config, self.action_space = model_spec(config, latest if resuming else None)
        if model_config.supervises_every_frame and config.history_dropout > 0.0:
            raise SystemExit(f"history_dropout {config.history_dropout}: the {model_config.action_readout} layout "
                             "trains every frame of a window against the frames before it, so there is no history "
                             "to drop; set history_dropout=0")
        loss = LossConfig(label_smoothing=config.label_smoothing, target_sigma_bins=config.target_sigma_bins)
        self.policy = RT1Policy(RT1PolicyConfig(model=model_config, action_space=self.action_space, loss=loss))
        self.model = self.policy.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.tokenizer = self.policy.tokenizer

        self._load_data()
        self.objective = TrainingObjective(self.policy, self._make_auxiliary_head(), self._make_target_cell_head(),
                                           config.auxiliary_state_weight, config.target_cell_weight)
        self.optimizer = make_optimizer(self.objective.trainable_named_parameters(), config)
        self._resumed_scaler_state: dict | None = None
        if resume:
            self._resume(latest)
        if config.init_checkpoint and not resuming:
            self._initialise_from(Path(config.init_checkpoint))
        elif config.backbone_weights and not resuming:
            from rt1_ros.model.pretrained_backbone import load_imagenet_backbone

            loaded = load_imagenet_backbone(self.model.image_encoder, config.backbone_weights)
            if self.dist.is_main:
                print(f"backbone: {len(loaded)} ImageNet tensors from {config.backbone_weights}")
        # What the optimizer steps through: the objective (policy and training-only heads), or its
        # DistributedDataParallel wrapper across processes.
        self.trained: nn.Module = self.dist.wrap(self.objective, self.device)
        self.autocast_dtype = None
        if self.device.type == "cuda" and config.mixed_precision != "none":
            self.autocast_dtype = torch.bfloat16 if config.mixed_precision == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        if self.scaler.is_enabled() and self._resumed_scaler_state:
            # float16 on CUDA: a resumed run continues from the loss scale (and growth count) it had reached; the
            # default 2**16 would overflow again and skip the first steps.
            self.scaler.load_state_dict(self._resumed_scaler_state)

    # ------------------------------------------------------------------------------------------------- set-up
    def _select_device(self, device: str) -> torch.device:
        if device == "auto":
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        if torch.device(device).type == "cpu":
            torch.set_num_threads(self.config.num_threads or max(1, len(os.sched_getaffinity(0))))
        return torch.device(device)

    def _load_data(self) -> None:
        config = self.config
        roots = [config.data, *config.extra_data]
        datasets = [list(EpisodeDataset(root, families=config.families or None,
                                        successful_only=config.successful_only)) for root in roots]
        dataset = [episode for episodes in datasets for episode in episodes]
        if len(dataset) == 0:
            raise SystemExit(f"no usable episodes in {', '.join(roots)} (families {list(config.families) or 'all'})")
        # Each directory is split on its own, so `data` keeps the validation episodes it has without extra_data (for
        # the same seed, val_fraction, families and manifest): a fine-tuned run does not validate on what its
        # init_checkpoint trained on.
        train, val = [], []
        for episodes in datasets:
            part_train, part_val = split_episodes(episodes, config.val_fraction, config.seed)
            train += part_train
            val += part_val
        self.validation_episodes = val
        model_config = self.model.config
        if model_config.supervises_every_frame:
            short = [e for e in dataset if e.info.num_steps < model_config.num_frames]
            if short:
                # Its windows are T consecutive steps (no padding, as the release trained); a shorter episode has
                # none.
                raise SystemExit(f"{len(short)} episode(s) have fewer than the {model_config.num_frames} steps of a "
                                 f"{model_config.action_readout} window, e.g. {short[0].path} "
                                 f"({short[0].info.num_steps}); leave them out of the dataset")
        wordings = {id(e): task_wordings(e, config.reword_paraphrases) for e in train} \
            if config.reword_instructions else {}
        instructions = sorted({e.info.instruction for e in dataset} | {w for ws in wordings.values() for w in ws})
        # The frozen encoder runs once per distinct instruction; the loop only indexes this table. (I,E), E the
        # network's instruction width (384 for the project's sizes, 512 for a converted official checkpoint)
        self.text_table = embed_instructions(config.text_encoder, self.model.config.text_embedding_dim,
                                             instructions).to(self.device)
        row = {text: i for i, text in enumerate(instructions)}
        # Demonstrations are in the robot's units; the tokenizer bins the model's: each continuous value is mapped
        # back through the action space's scale and offset, the mapping rt1_node applies to decoded values. The
        # project's action spaces have scale 1 and offset 0; a converted release's maps its gripper (-1..1
        # closedness) onto the robot's 0..1, and a calibration (action_space_file) its other dimensions.
        robot_mapped = bool((self.action_space.scale != 1.0).any() or (self.action_space.offset != 0.0).any())

        uses_scene_state = config.auxiliary_state_weight > 0 or config.target_cell_weight > 0
        self.scene_state_names = next((list((e.info.extra or {}).get("scene_state_names") or [])
                                       for e in dataset if e.scene_state is not None), [])

        def arrays(episode: Episode) -> EpisodeArrays:
            actions = self.action_space.actions_from_robot(episode.actions) if robot_mapped else episode.actions
            return EpisodeArrays(frames=episode.frames, tokens=self.tokenizer.encode(actions),
                                 instruction_index=row[episode.info.instruction], family=episode.info.task_family,
                                 scene_state=episode.scene_state if uses_scene_state else None,
                                 wordings=tuple(row[w] for w in wordings.get(id(episode), ())))

        # The frames the network takes: image_size square for the project's sizes, 256×320 for the released RT-1
        # (which resizes them to image_size itself).
        size = model_config.frame_size
        frames, every_frame = model_config.num_frames, model_config.supervises_every_frame
        self.train_sampler = WindowSampler([arrays(e) for e in train], frames, size, config, every_frame)
        self.val_sampler = WindowSampler([arrays(e) for e in val], frames, size, config, every_frame) if val else None
        # (family, target) pairs the generator held out of the data: rt1-eval reports them separately.
        # Only the pairs of the families the data holds: the others were never asked for here either way.
        families = {e.info.task_family for e in dataset}
        held_out = sorted({pair for e in dataset for pair in (e.info.extra or {}).get("held_out") or ()
                           if pair.split(":", 1)[0] in families})
        # The scene conditions the data was drawn from (data from before conditions existed shows the fixed scene):
        # rt1-eval refuses to call a condition unseen that is among them.
        conditions = sorted({(e.info.extra or {}).get("condition") or "nominal" for e in dataset})
        self.dataset_summary = {"episodes": len(dataset), "sources": dict(Counter(e.info.source for e in dataset)),
                                "train_episodes": len(train), "val_episodes": len(val),
                                "train_steps": sum(e.info.num_steps for e in train),
                                "val_steps": sum(e.info.num_steps for e in val), "instructions": len(instructions),
                                "families": sorted({e.info.task_family for e in dataset}),
                                "held_out_targets": held_out, "conditions": conditions,
                                # what each family gets of the sampled runs (balance_families)
                                "family_shares": {family: round(share, 3) for family, share
                                                  in self.train_sampler.family_shares().items()}}

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
        return SceneStateHead(self.model.transformer.width, stacked.mean(dim=0), std).to(self.device)

    def _make_target_cell_head(self) -> TargetCellHead | None:
        if self.config.target_cell_weight <= 0.0:
            return None
        needed = ("target_image_u", "target_image_v")
        if not set(needed) <= set(self.scene_state_names):
            raise SystemExit(f"target_cell_weight > 0 needs episodes whose scene_state.npy has {list(needed)}; "
                             f"{self.config.data} has {self.scene_state_names or 'none'} (rt1-generate records them)")
        columns = tuple(self.scene_state_names.index(name) for name in needed)
        return TargetCellHead(self.model.config.embed_dim, columns).to(self.device)

    # -------------------------------------------------------------------------------------------- the loop
    def run(self) -> dict:
        """Train until the step count (or the time budget) is spent; rank 0 logs, validates and checkpoints on the
        way. -> final step, training time, best validation loss and the last validation metrics."""
        from tqdm import tqdm

        config, main = self.config, self.dist.is_main
        log = self._start_run_directory() if main else None
        bar = tqdm(initial=self.step, total=config.total_steps, desc="train", unit="step",
                   disable=not (self.progress and main))
        window = TrainWindow()
        metrics: dict = {}
        clock = time.perf_counter()  # elapsed_s counts training only: the clock restarts after validation and saving
        try:
            while not self.dist.decided_by_main(self._progress_fraction() >= 1.0, self.device):
                rng = step_random_state(config.seed, self.step, self.dist.rank)
                window.add(*self.train_step(rng))
                now = time.perf_counter()
                self.elapsed_s += now - clock
                clock = now
                self.step += 1
                bar.update(1)
                if not main:
                    continue
                finished = self._progress_fraction() >= 1.0
                if finished or self.step % config.log_every == 0:
                    self._log_training(log, window, bar, now)
                if finished or self.step % config.eval_every == 0:
                    metrics = self._validate_and_log(log, bar)
                    clock = time.perf_counter()
                if finished or self.step % config.checkpoint_every == 0:
                    self._checkpoint(metrics)
                    clock = time.perf_counter()
        finally:
            bar.close()
            if log is not None:
                log.close()
        self.dist.finish()
        return {"step": self.step, "elapsed_s": self.elapsed_s, "best_val_loss": self.best_val_loss, **metrics}

    def _progress_fraction(self) -> float:
        """How much of the run is done (1 ends it): by steps, or by time when that is further along."""
        by_steps = self.step / self.config.total_steps
        if self.config.time_budget_min > 0:
            return max(by_steps, self.elapsed_s / (self.config.time_budget_min * 60.0))
        return by_steps

    def train_step(self, rng: np.random.Generator) -> tuple[float, float, int, dict[str, float]]:
        """One optimizer step on a fresh batch -> (loss, token accuracy, number of targets, the training-only heads'
        losses by metric name)."""
        self.trained.train()
        batch = self.training_batch(rng)
        set_learning_rate(self.optimizer, learning_rate_at(self.config, self.step, self._progress_fraction()))
        with self._autocast():
            loss, outputs = self.trained(batch)
        head_losses = {name: outputs[key].item() for name, key in HEAD_METRICS.items() if outputs[key] is not None}
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_([p for _, p in self.objective.trainable_named_parameters()],
                                 self.config.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        targets = outputs["targets"]  # (M,11): every supervised step (each window's newest, or all its frames)
        accuracy = (outputs["tokens"] == targets).float().mean().item()
        return loss.item(), accuracy, len(targets), head_losses

    @torch.no_grad()
    def validate(self) -> dict:
        """Loss and exact-token accuracy per dimension (and per family) over every held-out step, each once and
        with the frames before it that a control step has (WindowSampler.sequential)."""
        if self.val_sampler is None:
            return {}
        # The plain policy, not the DistributedDataParallel wrapper: only rank 0 validates. Plain cross-entropy
        # (LossConfig()), whatever shapes the training loss, so validation losses compare across runs.
        self.policy.eval()
        tally = ValidationTally(self.action_space, self.device)
        for batch in self.val_sampler.sequential():
            tensors = self._to_device(batch)
            with self._autocast():
                _, outputs = self.objective(tensors, loss=LossConfig())
            families = [batch.families[i] for i in outputs["rows"].tolist()]  # each scored step's
            tally.add(outputs["action_loss"], outputs["tokens"], outputs["targets"], families,
                      {name: outputs[key] for name, key in HEAD_METRICS.items() if outputs[key] is not None})
        return tally.metrics()

    def training_batch(self, rng: np.random.Generator) -> TrainingBatch:
        """A fresh augmented batch on the device, as a training step takes it (validation's is _to_device's)."""
        sampled = self.train_sampler.sample(rng)
        batch = self._to_device(sampled)
        if self.config.instruction_noise > 0.0:
            batch["frame_text"] = noisy_instructions(batch["frame_text"], sampled.frame_run, rng,
                                                     self.config.instruction_noise)
        return batch

    def _to_device(self, batch: Batch) -> TrainingBatch:
        images = batch.images.to(self.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        tensors = {"images": images, "frame_text": self.text_table[batch.frame_instruction.to(self.device)],
                   "windows": batch.windows.to(self.device), "targets": batch.targets.to(self.device)}
        if batch.scored is not None:
            tensors["scored"] = batch.scored.to(self.device)
        if self.objective.heads() and batch.scene_state is not None:
            tensors["scene_state"] = batch.scene_state.to(self.device)
        return tensors

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    # ------------------------------------------------------------------------- logging, validation, saving
    def _start_run_directory(self) -> MetricsLog:
        """Create the run directory, record the config, say what is being trained; -> metrics.csv, open to append."""
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / TRAIN_CONFIG_FILE).write_text(yaml.safe_dump(to_mapping(self.config), sort_keys=False))
        roots = ", ".join([self.config.data, *self.config.extra_data])
        model = f"init_checkpoint {self.config.init_checkpoint}" if self.config.init_checkpoint else \
            f"model {self.config.model_size}"
        print(f"data {roots}: {self.dataset_summary}; {model} "
              f"{self.model.config.image_size} px, {sum(p.numel() for p in self.model.parameters()):,} parameters "
              f"on {self.device} (world size {self.dist.world_size})")
        return MetricsLog(self.output, self.action_space.names)

    def _log_training(self, log: MetricsLog, window: TrainWindow, bar, now: float) -> None:
        """A training row (means since the last one) to metrics.csv and the progress bar; starts a new window."""
        row = {"step": self.step, "elapsed_s": round(self.elapsed_s, 1), "lr": self.optimizer.param_groups[0]["lr"],
               **window.row(now)}
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_token_acc']:.3f}",
                        tps=f"{window.targets_per_s(now):.0f}")
        log.write(row)
        window.reset()

    def _validate_and_log(self, log: MetricsLog, bar) -> dict:
        """Validate, write the row, report it, and save best/ when the validation loss is the lowest yet."""
        metrics = self.validate()
        if not metrics:
            return metrics
        log.write({"step": self.step, "elapsed_s": round(self.elapsed_s, 1), **metrics})
        families = " ".join(f"{k[len('val_acc_family_'):]}={v:.3f}" for k, v in metrics.items()
                            if k.startswith("val_acc_family_"))
        cell = f", target cell acc {metrics['val_target_cell_acc']:.3f}" if "val_target_cell_acc" in metrics else ""
        bar.write(f"step {self.step}: val loss {metrics['val_loss']:.4f}, token acc "
                  f"{metrics['val_token_acc']:.3f} {families}{cell}")
        if metrics["val_loss"] < self.best_val_loss:
            self.best_val_loss = metrics["val_loss"]
            self.save("best", metrics)
        return metrics

    def _checkpoint(self, metrics: dict) -> None:
        """latest/, and best/ too when there is no validation split to choose it by."""
        self.save("latest", metrics)
        if self.val_sampler is None:
            self.save("best", metrics)

    def save(self, name: str, metrics: dict) -> Path:
        directory = self.output / name
        extra = {"step": self.step, "elapsed_s": round(self.elapsed_s, 1), "train_config": to_mapping(self.config),
                 "dataset": self.dataset_summary, "metrics": metrics}
        self.policy.save_pretrained(directory, extra=json.loads(json.dumps(extra)))
        save_optimizer_state(self.optimizer, directory)
        self.objective.save_heads(directory)
        state = {"step": self.step, "elapsed_s": self.elapsed_s, "best_val_loss": self.best_val_loss,
                 "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None}
        (directory / TRAINER_STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        return directory

    def _load_weights_and_heads(self, directory: Path) -> list[str]:
        """The policy's weights and each training-only head's saved beside them; -> the heads with no file there
        (left as they are)."""
        load_weights_into(self.model, directory)
        return self.objective.load_heads(directory)

    def _initialise_from(self, directory: Path) -> None:
        """Fine-tuning: the policy's weights, and each training-only head's when saved beside them (else it starts
        fresh, which the log says)."""
        missing = self._load_weights_and_heads(directory)
        if self.dist.is_main:
            for name in missing:
                print(f"init_checkpoint {directory} has no {HEAD_FILES[name]}: {name} starts fresh",
                      file=sys.stderr)
            print(f"initialised from {directory} (fine-tuning; optimizer and schedule start fresh)")

    def _resume(self, directory: Path) -> None:
        if not (directory / TRAINER_STATE_FILE).is_file():
            start = f"from {self.config.init_checkpoint}" if self.config.init_checkpoint else "fresh"
            print(f"no checkpoint to resume in {directory}; starting {start}", file=sys.stderr)
            return
        missing = self._load_weights_and_heads(directory)
        if missing:
            raise SystemExit(f"{directory} was trained without {HEAD_FILES[missing[0]]}; resume with the "
                             "training config it was started with or start a new run")
        load_optimizer_state(self.optimizer, directory)
        state = json.loads((directory / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        self.step, self.elapsed_s = int(state["step"]), float(state["elapsed_s"])
        self.best_val_loss = float(state["best_val_loss"]) if state["best_val_loss"] is not None else math.inf
        self._resumed_scaler_state = state.get("grad_scaler")
        if self.dist.is_main:
            print(f"resumed from {directory} at step {self.step} ({self.elapsed_s / 60:.1f} min trained)")
