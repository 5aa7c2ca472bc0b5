"""rt1-export-lerobot then rt1-import-lerobot on a tiny generated dataset: the same actions and instructions come
back (frames within the video codec's tolerance), and the export has the LeRobotDataset v3.0 layout."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rt1_ros.configuration.action_layout import DIMENSION_NAMES
from rt1_ros.data import lerobot_export, lerobot_import
from rt1_ros.data.dataset import EpisodeDataset, EpisodeInfo, EpisodeWriter
from rt1_ros.training.demonstrations import main as generate
from rt1_ros.data.lerobot_export import ExportError, ExportSettings, export_dataset
from rt1_ros.data.lerobot_format import read_episodes, read_info, read_tasks
from rt1_ros.configuration.yaml_config import config_dir

MAPPING = config_dir() / "lerobot_mapping_rt1.yaml"
CAMERA = "observation.images.camera"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two short expert episodes of two families (different instructions), 64 px frames."""
    output = tmp_path_factory.mktemp("generated") / "rt1"
    assert generate(["--output", str(output), "--families", "pick", "push", "--episodes-per-family", "1",
                     "--max-steps", "12", "--keep-failed", "--frame-size", "64", "--no-progress"]) == 0
    return output


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def assert_same_episodes(original: EpisodeDataset, imported: EpisodeDataset) -> None:
    assert len(imported) == len(original) >= 2
    for before, after in zip(original, imported):
        assert after.info.instruction == before.info.instruction
        np.testing.assert_array_equal(after.actions, before.actions)  # float32 in parquet: bit for bit
        for name in ("episode_id", "task_family", "seed", "success", "source", "fps", "num_steps"):
            assert getattr(after.info, name) == getattr(before.info, name), name
        frames_before, frames_after = np.asarray(before.frames), np.asarray(after.frames)
        assert frames_after.shape == frames_before.shape
        # H.264 yuv420p at crf 18: small errors overall (chroma is halved, so sharp colour edges lose most).
        assert psnr(frames_before, frames_after) > 30.0
        assert np.abs(frames_before.astype(int) - frames_after).mean() < 5.0


def test_export_then_import_gives_the_same_actions_instructions_and_frames(generated, tmp_path, capsys):
    exported, imported = tmp_path / "lerobot", tmp_path / "back"
    assert lerobot_export.main([str(generated), str(exported)]) == 0
    assert "2 episode(s)" in capsys.readouterr().out
    assert lerobot_import.main([str(exported), "--mapping", str(MAPPING), "--output", str(imported)]) == 0
    assert_same_episodes(EpisodeDataset(generated), EpisodeDataset(imported))
    # A second import finds every episode already there.
    assert lerobot_import.main([str(exported), "--mapping", str(MAPPING), "--output", str(imported)]) == 0
    assert "0 episode(s) imported" in capsys.readouterr().out
    assert len(EpisodeDataset(imported)) == 2


def test_export_has_the_v3_layout(generated, tmp_path):
    episodes = list(EpisodeDataset(generated))
    info = export_dataset(episodes, tmp_path / "lerobot")
    root = tmp_path / "lerobot"
    assert read_info(root) == info == json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == int(episodes[0].info.fps)
    assert info["total_episodes"] == 2 and info["total_tasks"] == 2
    assert info["total_frames"] == sum(e.info.num_steps for e in episodes)
    features = info["features"]
    assert features["action"] == {"dtype": "float32", "shape": [11], "names": list(DIMENSION_NAMES)}
    assert features[CAMERA]["dtype"] == "video" and features[CAMERA]["shape"] == [64, 64, 3]
    assert features[CAMERA]["info"]["video.codec"] == "h264"
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index"} <= set(features)

    # tasks.parquet as pandas writes it: the text is the index named "task".
    tasks_table = pq.read_table(root / "meta/tasks.parquet")
    assert json.loads(tasks_table.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert read_tasks(root) == {0: episodes[0].info.instruction, 1: episodes[1].info.instruction}

    rows = read_episodes(root)
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.schema.field("action").type == pa.list_(pa.float32(), 11)
    assert data.column("index").to_pylist() == list(range(info["total_frames"]))
    end = 0.0
    for row, episode in zip(rows, episodes):
        assert row["tasks"] == [episode.info.instruction] and row["length"] == episode.info.num_steps
        assert row["dataset_to_index"] - row["dataset_from_index"] == row["length"]
        # Episodes follow one another in the one video file, 1/fps per frame.
        assert row[f"videos/{CAMERA}/from_timestamp"] == pytest.approx(end)
        end = row[f"videos/{CAMERA}/to_timestamp"]
        assert end - row[f"videos/{CAMERA}/from_timestamp"] == pytest.approx(row["length"] / info["fps"])
    stats = json.loads((root / "meta/stats.json").read_text())
    all_actions = np.concatenate([e.actions for e in episodes])
    np.testing.assert_allclose(stats["action"]["max"], all_actions.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["mean"], all_actions.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert stats["action"]["count"] == [info["total_frames"]]
    assert np.asarray(stats[CAMERA]["mean"]).shape == (3, 1, 1)


def test_size_limits_start_new_files_and_import_reads_them_all(generated, tmp_path):
    """With tiny limits every episode gets its own data and video file; the importer follows the episode rows."""
    root = tmp_path / "lerobot"
    export_dataset(list(EpisodeDataset(generated)), root,
                   ExportSettings(data_file_size_mb=1e-6, video_file_size_mb=1e-6))
    assert sorted(p.name for p in (root / "data/chunk-000").iterdir()) == ["file-000.parquet", "file-001.parquet"]
    rows = read_episodes(root)
    assert [row[f"videos/{CAMERA}/file_index"] for row in rows] == [0, 1]
    assert [row[f"videos/{CAMERA}/from_timestamp"] for row in rows] == [0.0, 0.0]
    assert lerobot_import.main([str(root), "--mapping", str(MAPPING), "--output", str(tmp_path / "back")]) == 0
    assert_same_episodes(EpisodeDataset(generated), EpisodeDataset(tmp_path / "back"))


def _episode(root, fps: float, seed: int, side: int = 16):
    frames = np.zeros((3, side, side, 3), np.uint8)
    info = EpisodeInfo(instruction="wave", task_family="test", seed=seed, success=True, source="test", fps=fps)
    return EpisodeWriter(root).write(frames, np.zeros((3, 11), np.float32), info)


def test_export_refuses_what_a_lerobot_dataset_cannot_hold(tmp_path):
    with pytest.raises(ExportError, match="one fps"):
        export_dataset([_episode(tmp_path / "a", 5.0, 0), _episode(tmp_path / "a", 10.0, 1)], tmp_path / "x")
    with pytest.raises(ExportError, match="whole number"):
        export_dataset([_episode(tmp_path / "b", 2.5, 0)], tmp_path / "y")
    with pytest.raises(ExportError, match="even frame sides"):
        export_dataset([_episode(tmp_path / "d", 5.0, 0, side=15)], tmp_path / "z")
    (tmp_path / "exists").mkdir()
    with pytest.raises(ExportError, match="exists"):
        export_dataset([_episode(tmp_path / "c", 5.0, 0)], tmp_path / "exists")
    assert lerobot_export.main([str(tmp_path / "c"), str(tmp_path / "exists")]) == 2
    with pytest.raises(ExportError, match="positive"):
        ExportSettings(video_file_size_mb=0)
