"""Episode dataset on disk: one directory per episode plus an append-only ``manifest.jsonl``.

Layout::

    <root>/
      manifest.jsonl                 one JSON line per *finished* episode (its episode.json plus "path")
      episodes/<episode_id>/
        frames.npy                   (T,H,W,3) uint8 RGB, the image each action was computed from
        actions.npy                  (T,11) float32, the action commanded at that step (tokenizer ranges, mode index)
        episode.json                 instruction, task family, seed, success, source, fps, frame size, ...
        scene_state.npy              optional (T,S) float32 privileged simulator state per step (rt1-generate:
                                     target and gripper positions, names in episode.json extra.scene_state_names)

Why this format
* Training reads random windows of consecutive frames: ``.npy`` opens with ``np.load(mmap_mode="r")``, so a window
  is a slice of a memory-mapped file — no decoding (JPEG/PNG would cost CPU on a 2-core machine), no per-frame file
  opens, no pickle. Frames are small (default 112 px, a bit above the tiny model's 96 px so that training can
  random-crop and resize back down), so a few thousand episodes fit in a few hundred MB uncompressed.
* Append-safe: an episode is written into ``episodes/.<id>.partial/`` and renamed into place (atomic on POSIX), and
  only then is its manifest line appended under an exclusive ``flock`` with a single ``write`` + ``fsync``. A crash
  therefore leaves at most a ``.partial`` directory (ignored, cleaned by the next writer) or a manifest line cut
  short (ignored by readers, since it does not end in a newline); existing episodes are never rewritten. Several
  generator processes may append to one dataset at the same time.
* The manifest is the index: readers never list directories, and an episode in ``episodes/`` without a manifest
  line is not part of the dataset. Each line carries the whole metadata, so filtering by family or success needs
  no file other than the manifest.
* One directory per episode keeps episodes independently deletable/copyable; a different frame size per episode
  is allowed (the loader resizes).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from rt1_ros.configuration.action_layout import NUM_ACTION_DIMS

MANIFEST_FILE = "manifest.jsonl"
EPISODES_DIR = "episodes"
FRAMES_FILE = "frames.npy"
ACTIONS_FILE = "actions.npy"
SCENE_STATE_FILE = "scene_state.npy"
EPISODE_FILE = "episode.json"
PARTIAL_SUFFIX = ".partial"
FORMAT_VERSION = 1
# extra["action_labels"] of an episode whose actions are an expert's labels for states another controller drove to
# (rt1-generate --policy, DAgger): worth training on whatever that episode's outcome was.
EXPERT_LABELS = "expert"


class DatasetError(RuntimeError):
    pass


@dataclass(frozen=True)
class EpisodeInfo:
    """The metadata of one episode (episode.json, and one manifest line with ``path`` added)."""

    instruction: str
    task_family: str
    seed: int
    success: bool
    source: str  # "sim_expert", "rosbag:<file name>", ...
    fps: float  # control rate the actions were recorded at
    num_steps: int = 0
    frame_height: int = 0
    frame_width: int = 0
    episode_id: str = ""
    created_unix: float = 0.0
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def expert_labelled(self) -> bool:
        """The actions are an expert's for the visited states, not what was executed (DAgger)."""
        return (self.extra or {}).get("action_labels") == EXPERT_LABELS


@dataclass
class Episode:
    info: EpisodeInfo
    path: Path

    @property
    def frames(self) -> np.ndarray:
        """(T,H,W,3) uint8, memory-mapped (read-only)."""
        return np.load(self.path / FRAMES_FILE, mmap_mode="r")

    @property
    def actions(self) -> np.ndarray:
        """(T,11) float32."""
        return np.load(self.path / ACTIONS_FILE)

    @property
    def scene_state(self) -> np.ndarray | None:
        """(T,S) float32 privileged simulator state per step (names in ``info.extra["scene_state_names"]``), or
        None for episodes recorded without it (real robots, older datasets)."""
        path = self.path / SCENE_STATE_FILE
        return np.load(path) if path.is_file() else None


def _validate(frames: np.ndarray, actions: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DatasetError(f"frames must be (T,H,W,3) uint8, got {frames.shape} {frames.dtype}")
    if actions.ndim != 2 or actions.shape[1] != NUM_ACTION_DIMS:
        raise DatasetError(f"actions must be (T,{NUM_ACTION_DIMS}), got {actions.shape}")
    if len(frames) != len(actions) or len(frames) == 0:
        raise DatasetError(f"need one action per frame and at least one step: {len(frames)} frames, "
                           f"{len(actions)} actions")
    if not np.isfinite(actions).all():
        raise DatasetError("actions contain non-finite values")


class EpisodeWriter:
    """Appends finished episodes to a dataset directory (created on first use)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        (self.root / EPISODES_DIR).mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials()

    def _remove_stale_partials(self, older_than_s: float = 3600.0) -> None:
        # Only old ones: a fresh .partial may belong to another writer that is still running.
        now = time.time()
        for partial in (self.root / EPISODES_DIR).glob(f".*{PARTIAL_SUFFIX}"):
            try:
                modified = partial.stat().st_mtime
            except FileNotFoundError:
                continue  # another writer finished it (renamed into place) since the glob
            if now - modified > older_than_s:
                shutil.rmtree(partial, ignore_errors=True)

    def write(self, frames: np.ndarray, actions: np.ndarray, info: EpisodeInfo,
              scene_state: np.ndarray | None = None) -> Episode:
        frames = np.ascontiguousarray(frames)
        actions = np.ascontiguousarray(actions, dtype=np.float32)
        _validate(frames, actions)
        if scene_state is not None:
            scene_state = np.ascontiguousarray(scene_state, dtype=np.float32)
            if scene_state.ndim != 2 or len(scene_state) != len(actions) or not np.isfinite(scene_state).all():
                raise DatasetError(f"scene_state must be (T,S) finite with T={len(actions)}, got "
                                   f"{scene_state.shape}")
        episode_id = info.episode_id or f"{info.task_family}_{info.seed:06d}_{uuid.uuid4().hex[:8]}"
        info = EpisodeInfo(**{**asdict(info), "episode_id": episode_id, "num_steps": len(frames),
                              "frame_height": frames.shape[1], "frame_width": frames.shape[2],
                              "created_unix": info.created_unix or time.time()})
        final = self.root / EPISODES_DIR / episode_id
        if final.exists():
            raise DatasetError(f"episode {final} already exists")
        partial = self.root / EPISODES_DIR / f".{episode_id}{PARTIAL_SUFFIX}"
        partial.mkdir()
        np.save(partial / FRAMES_FILE, frames)
        np.save(partial / ACTIONS_FILE, actions)
        files = [FRAMES_FILE, ACTIONS_FILE, EPISODE_FILE]
        if scene_state is not None:
            np.save(partial / SCENE_STATE_FILE, scene_state)
            files.append(SCENE_STATE_FILE)
        (partial / EPISODE_FILE).write_text(json.dumps(asdict(info), indent=1), encoding="utf-8")
        for name in files:
            _fsync_file(partial / name)
        os.replace(partial, final)
        self._append_manifest({**asdict(info), "path": f"{EPISODES_DIR}/{episode_id}"})
        return Episode(info=info, path=final)

    def _append_manifest(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.root / MANIFEST_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A previous writer that crashed mid-line left no newline: start on a fresh line so ours parses.
            if os.fstat(fd).st_size > 0 and not _ends_with_newline(self.root / MANIFEST_FILE):
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(root: str | Path) -> list[dict]:
    """Complete manifest lines (a torn last line from a crashed writer is skipped), in append order."""
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n") or not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by a crash and then followed by a fresh one
    return records


class EpisodeDataset:
    """The episodes listed in a dataset's manifest, optionally filtered."""

    def __init__(self, root: str | Path, families: Iterable[str] | None = None, successful_only: bool = False) -> None:
        """``successful_only``: skip episodes that failed, except expert-labelled ones (their labels are the
        expert's whatever the executed actions did)."""
        self.root = Path(root)
        if not (self.root / MANIFEST_FILE).is_file():
            raise DatasetError(f"no {MANIFEST_FILE} in {self.root}: not a dataset (run rt1-generate or rt1-import-bag)")
        wanted = set(families) if families else None
        known = {f.name for f in fields(EpisodeInfo)}
        self.episodes: list[Episode] = []
        for record in read_manifest(self.root):
            path = self.root / record["path"]
            if not path.is_dir():
                continue  # deleted by hand: the manifest is append-only, the directory is the truth for removal
            info = EpisodeInfo(**{k: v for k, v in record.items() if k in known})
            if wanted is not None and info.task_family not in wanted:
                continue
            if successful_only and not info.success and not info.expert_labelled:
                continue
            self.episodes.append(Episode(info=info, path=path))

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index: int) -> Episode:
        return self.episodes[index]

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    def existing_keys(self) -> set[tuple[str, str, int]]:
        """(source, task family, seed) of every episode, so a generator can skip what is already there."""
        return {(e.info.source, e.info.task_family, e.info.seed) for e in self.episodes}

    def total_steps(self) -> int:
        return sum(e.info.num_steps for e in self.episodes)


def open_or_empty(root: str | Path, **filters) -> EpisodeDataset | None:
    root = Path(root)
    return EpisodeDataset(root, **filters) if (root / MANIFEST_FILE).is_file() else None
