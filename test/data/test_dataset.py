"""Episode dataset: round trip, and that a crash or a concurrent writer never corrupts what is already there."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from rt1_ros.data.dataset import MANIFEST_FILE, DatasetError, EpisodeDataset, EpisodeInfo, EpisodeWriter, read_manifest


def _episode(steps: int, value: int = 0, size: int = 8):
    frames = np.full((steps, size, size, 3), value, dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(steps)  # each frame distinguishable
    actions = np.zeros((steps, 11), dtype=np.float32)
    actions[:, 0] = np.linspace(-0.05, 0.05, steps)
    actions[-1, 10] = 2
    return frames, actions


def _info(seed: int, family: str = "pick", success: bool = True) -> EpisodeInfo:
    return EpisodeInfo(instruction=f"pick up the red cube {seed}", task_family=family, seed=seed, success=success,
                       source="test", fps=3.0)


def test_round_trip(tmp_path):
    writer = EpisodeWriter(tmp_path)
    frames, actions = _episode(5, value=7)
    written = writer.write(frames, actions, _info(3))
    dataset = EpisodeDataset(tmp_path)
    assert len(dataset) == 1
    episode = dataset[0]
    assert episode.info.episode_id == written.info.episode_id
    assert episode.info.num_steps == 5 and (episode.info.frame_height, episode.info.frame_width) == (8, 8)
    loaded = episode.frames
    assert isinstance(loaded, np.memmap)  # windows are slices of a mapped file, not copies
    np.testing.assert_array_equal(loaded, frames)
    np.testing.assert_array_equal(episode.actions, actions)
    on_disk = json.loads((episode.path / "episode.json").read_text())
    assert on_disk["instruction"] == "pick up the red cube 3" and on_disk["fps"] == 3.0
    assert dataset.existing_keys() == {("test", "pick", 3)}


def test_filters_by_family_and_success(tmp_path):
    writer = EpisodeWriter(tmp_path)
    writer.write(*_episode(3), _info(0, "pick"))
    writer.write(*_episode(3), _info(1, "move_near"))
    writer.write(*_episode(3), _info(2, "pick", success=False))
    assert len(EpisodeDataset(tmp_path)) == 3
    assert [e.info.seed for e in EpisodeDataset(tmp_path, families=["pick"])] == [0, 2]
    assert [e.info.seed for e in EpisodeDataset(tmp_path, successful_only=True)] == [0, 1]


def test_torn_manifest_line_and_partial_directory_are_ignored_and_appending_continues(tmp_path):
    writer = EpisodeWriter(tmp_path)
    writer.write(*_episode(3), _info(0))
    # A writer that crashed mid-append (no newline) and one that crashed before its rename.
    with open(tmp_path / MANIFEST_FILE, "a") as handle:
        handle.write('{"instruction": "half a li')
    (tmp_path / "episodes" / ".crashed.partial").mkdir()
    assert [e.info.seed for e in EpisodeDataset(tmp_path)] == [0]
    writer.write(*_episode(4), _info(1))
    assert [e.info.seed for e in EpisodeDataset(tmp_path)] == [0, 1]
    assert len(read_manifest(tmp_path)) == 2


def test_episode_directory_without_manifest_line_is_not_in_the_dataset(tmp_path):
    writer = EpisodeWriter(tmp_path)
    writer.write(*_episode(3), _info(0))
    stray = tmp_path / "episodes" / "stray"
    stray.mkdir()
    np.save(stray / "frames.npy", np.zeros((1, 8, 8, 3), np.uint8))
    assert len(EpisodeDataset(tmp_path)) == 1


def test_concurrent_writers_all_land(tmp_path):
    errors = []

    def write_many(offset: int) -> None:
        try:
            writer = EpisodeWriter(tmp_path)
            for seed in range(offset, offset + 10):
                writer.write(*_episode(2), _info(seed))
        except Exception as exc:  # noqa: BLE001 — surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write_many, args=(k * 100,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seeds = sorted(e.info.seed for e in EpisodeDataset(tmp_path))
    assert seeds == sorted(s for k in range(3) for s in range(k * 100, k * 100 + 10))


@pytest.mark.parametrize("frames, actions", [
    (np.zeros((3, 8, 8, 3), np.float32), np.zeros((3, 11))),  # frames not uint8
    (np.zeros((3, 8, 8, 3), np.uint8), np.zeros((2, 11))),  # one action per frame
    (np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 10))),  # 11-d actions
    (np.zeros((3, 8, 8, 3), np.uint8), np.full((3, 11), np.nan)),  # finite
])
def test_invalid_episodes_are_refused_and_leave_nothing(tmp_path, frames, actions):
    writer = EpisodeWriter(tmp_path)
    with pytest.raises(DatasetError):
        writer.write(frames, actions, _info(0))
    assert not (tmp_path / MANIFEST_FILE).exists()
    assert not list((tmp_path / "episodes").iterdir())


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="manifest.jsonl"):
        EpisodeDataset(tmp_path)
