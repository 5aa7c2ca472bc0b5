"""Training and validation batches: the episode split, windows built exactly as at inference, augmentation.

Training windows follow inference exactly: 6 frames ending at the target step, front-padded by repeating frame 0
(`pad_window_indices`), frames resized with `resize_for_model`. The target is the window's newest step.

A layout that supervises every frame (the released RT-1, ``every_frame``) is trained as it was released: a window
is T consecutive steps (never padded) and each of its steps is a target, predicted from the steps before it in the
window. An episode's first steps are the first window's earlier frames, which see exactly the frames so far, as at
run time. Validation scores every step once with its run-time context: all frames of an episode's first window, the
newest frame of each later one (``Batch.scored``).

Efficiency: a batch is a few runs of consecutive steps. Each frame of a run is encoded once by the backbone and its
tokens are gathered into every window that contains it (the tokens of a frame depend only on that frame and the
instruction, which is what the node's frame-token cache relies on too). One crop and one colour jitter per run, as a
real camera would drift, not flicker.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rt1_ros.data.dataset import Episode
from rt1_ros.inference.frame_history import pad_window_indices
from rt1_ros.inference.image_decoding import resize_for_model
from rt1_ros.training.config import TrainConfig


@dataclass
class EpisodeArrays:
    frames: np.ndarray  # (T,H,W,3) uint8, memory-mapped
    tokens: np.ndarray  # (T,11) int64
    instruction_index: int
    family: str
    scene_state: np.ndarray | None = None  # (T,S) float32 privileged state, when the dataset recorded it
    wordings: tuple[int, ...] = ()  # rows of the instruction table a training run may word this task with instead


@dataclass
class Batch:
    images: torch.Tensor  # (F,3,S,S) float in [0,1]: every distinct frame the batch needs
    frame_instruction: torch.Tensor  # (F,) long: row of the instruction table for each frame
    windows: torch.Tensor  # (N,T) long: rows of `images` making each target's window, oldest first
    targets: torch.Tensor  # (N,11) long: each window's newest step; (N,T,11) each of its steps with every_frame
    families: list[str]  # (N,)
    scene_state: torch.Tensor | None = None  # (N,S) float at each window's newest step, NaN where an episode has none
    scored: torch.Tensor | None = None  # (N,T) bool with every_frame: the steps that count (None: all)
    frame_run: torch.Tensor | None = None  # (F,) long: which sampled run each frame belongs to (0..R-1)


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
    """Builds batches of windows from episodes, with the inference-time padding and resize. ``image_size``: the
    side of the square frames the network takes, or their (height, width). ``every_frame``: windows of T
    consecutive steps, each step a target (module doc)."""

    def __init__(self, episodes: list[EpisodeArrays], num_frames: int, image_size: int | tuple[int, int],
                 config: TrainConfig, every_frame: bool = False) -> None:
        if not episodes:
            raise ValueError("no episodes to sample from")
        self.episodes = episodes
        self.num_frames = num_frames
        self.image_size = image_size
        self.config = config
        self.every_frame = every_frame
        # The steps a window can end at: each one, or from step T-1 on when a window is T whole steps.
        self._first_end = num_frames - 1 if every_frame else 0
        lengths = np.array([len(e.tokens) - self._first_end for e in episodes], dtype=np.float64)
        if (lengths < 1).any():
            raise ValueError(f"an episode has fewer steps than a window of {num_frames} consecutive steps")
        # Episodes drawn in proportion to their length (plus the runs overhanging either end) covers every step,
        # first and last (terminate) included, equally often.
        weights = lengths + config.segment_length - 1
        if config.balance_families:
            # Each family the same share of runs, its episodes drawn within it as above: a family of short or
            # few episodes is not crowded out by families of long ones.
            families = np.array([e.family for e in episodes])
            for family in np.unique(families):
                weights[families == family] /= weights[families == family].sum()
        self._probabilities = weights / weights.sum()
        widths = {e.scene_state.shape[1] for e in episodes if e.scene_state is not None}
        if len(widths) > 1:
            raise ValueError(f"episodes disagree on the scene state's width: {sorted(widths)}")
        self.scene_state_width = widths.pop() if widths else 0

    def family_shares(self) -> dict[str, float]:
        """The probability that a sampled run comes from each family."""
        shares: dict[str, float] = {}
        for episode, probability in zip(self.episodes, self._probabilities):
            shares[episode.family] = shares.get(episode.family, 0.0) + float(probability)
        return dict(sorted(shares.items()))

    def sample(self, rng: np.random.Generator) -> Batch:
        """A training batch: random runs, with crop and colour augmentation."""
        runs = []
        length = self.config.segment_length
        for index in rng.choice(len(self.episodes), size=self.config.segments_per_batch, p=self._probabilities):
            ends = len(self.episodes[index].tokens) - self._first_end  # how many windows the episode has
            start = int(rng.integers(-(length - 1), ends))
            runs.append((int(index), max(0, start) + self._first_end, min(ends, start + length) + self._first_end))
        return self._assemble(runs, rng)

    def sequential(self, max_targets: int = 64):
        """Every step of every episode once, no augmentation: the validation pass."""
        runs: list[tuple[int, int, int]] = []
        count = 0
        for index, episode in enumerate(self.episodes):
            steps = len(episode.tokens)
            for start in range(self._first_end, steps, max_targets):
                runs.append((index, start, min(steps, start + max_targets)))
                count += runs[-1][2] - start
                if count >= max_targets:
                    yield self._assemble(runs, None)
                    runs, count = [], 0
        if runs:
            yield self._assemble(runs, None)

    def _assemble(self, runs: list[tuple[int, int, int]], rng: np.random.Generator | None) -> Batch:
        """``runs``: (episode, first, end) with the steps first..end-1 the newest of a window each."""
        images, frame_instruction, windows, targets, families, states, scored = [], [], [], [], [], [], []
        frame_run: list[int] = []
        offset = 0
        for run, (index, first, end) in enumerate(runs):
            episode = self.episodes[index]
            context_start = max(0, first - self.num_frames + 1)
            frames = self._prepare_frames(np.asarray(episode.frames[context_start:end]), rng)  # (n,3,h,w)
            images.append(frames)
            instruction = episode.instruction_index
            if rng is not None and episode.wordings:
                instruction = episode.wordings[int(rng.integers(len(episode.wordings)))]
            frame_instruction += [instruction] * len(frames)
            frame_run += [run] * len(frames)
            for step in range(first, end):
                if self.every_frame:
                    indices = list(range(step - self.num_frames + 1, step + 1))  # T whole steps, never padded
                    # Validation: an episode's first window scores all its steps, a later one its newest.
                    scored.append([True] * self.num_frames if step == self._first_end or rng is not None
                                  else [False] * (self.num_frames - 1) + [True])
                else:
                    indices = pad_window_indices(step, self.num_frames)
                    if rng is not None and self.config.history_dropout > 0.0 \
                            and rng.random() < self.config.history_dropout:
                        indices = [step] * self.num_frames  # only the current frame, as on an episode's first step
                windows.append([offset + i - context_start for i in indices])
            if self.every_frame:  # (n,T,11): each window's steps
                targets.append(np.stack([episode.tokens[step - self.num_frames + 1:step + 1]
                                         for step in range(first, end)]))
            else:
                targets.append(episode.tokens[first:end])
            families += [episode.family] * (end - first)
            if self.scene_state_width and episode.scene_state is not None:
                states.append(np.asarray(episode.scene_state[first:end], dtype=np.float32))
            elif self.scene_state_width:
                states.append(np.full((end - first, self.scene_state_width), np.nan, dtype=np.float32))
            offset += len(frames)
        scene_state = torch.from_numpy(np.concatenate(states)) if self.scene_state_width else None
        # Training scores every frame of its windows: no mask needed.
        scored_mask = torch.tensor(scored) if self.every_frame and rng is None else None
        return Batch(images=torch.cat(images), frame_instruction=torch.tensor(frame_instruction),
                     windows=torch.tensor(windows), targets=torch.from_numpy(np.concatenate(targets)),
                     families=families, scene_state=scene_state, scored=scored_mask,
                     frame_run=torch.tensor(frame_run))

    def _prepare_frames(self, frames: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
        """(n,H,W,3) uint8 -> (n,3,h,w) float in [0,1], one crop and one jitter for the whole run."""
        height, width = frames.shape[1:3]
        if rng is not None and self.config.crop_scale_min < 1.0:
            scale = rng.uniform(self.config.crop_scale_min, 1.0)
            crop_h, crop_w = max(1, round(height * scale)), max(1, round(width * scale))
            top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
            frames = frames[:, top:top + crop_h, left:left + crop_w]
        resized = np.stack([resize_for_model(frame, self.image_size) for frame in frames])  # (n,h,w,3)
        if rng is not None and any(self.config.crop_padding):
            resized = pad_and_crop(resized, self.config.crop_padding, rng)
        images = torch.from_numpy(resized).permute(0, 3, 1, 2).float().div_(255.0)
        if rng is not None:
            images = colour_jitter(images, rng, self.config)
        return images


def pad_and_crop(frames: np.ndarray, padding: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(n,h,w,3) -> (n,h,w,3): zeros added on each side, (rows top and bottom, columns left and right), then one
    random h×w crop for all n frames: the released RT-1's training crop (20, 50 at 256×320)."""
    rows, columns = padding
    height, width = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (rows, rows), (columns, columns), (0, 0)))
    top, left = int(rng.integers(0, 2 * rows + 1)), int(rng.integers(0, 2 * columns + 1))
    return np.ascontiguousarray(padded[:, top:top + height, left:left + width])


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


def noisy_instructions(frame_text: torch.Tensor, frame_run: torch.Tensor, rng: np.random.Generator,
                       max_noise: float) -> torch.Tensor:
    """(F,E) instruction embeddings, each run's moved off its wording (TrainConfig.instruction_noise): e becomes
    e + s·|e|·n rescaled to |e|, one random unit direction n and one s ~ U[0, max_noise] per run, shared by the
    run's frames (they are one episode's, worded once)."""
    runs, width = int(frame_run.max()) + 1, frame_text.shape[-1]
    directions = rng.standard_normal((runs, width)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    sizes = rng.uniform(0.0, max_noise, size=(runs, 1)).astype(np.float32)
    offsets = torch.from_numpy(directions * sizes).to(frame_text.device)[frame_run.to(frame_text.device)]  # (F,E)
    norms = frame_text.norm(dim=-1, keepdim=True)
    moved = frame_text + offsets * norms
    return moved / moved.norm(dim=-1, keepdim=True) * norms
