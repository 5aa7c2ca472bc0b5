"""The LeRobotDataset v3.0 layout (huggingface/lerobot, `docs/source/lerobot-dataset-v3.mdx` and
`src/lerobot/datasets/utils.py`), read and written with pyarrow alone: no dependency on the `lerobot` package.

    meta/info.json                               codebase_version "v3.0", fps, features (dtype, shape, names),
                                                 totals, chunks_size, file size limits, path templates, robot_type
    meta/stats.json                              per-feature min/max/mean/std/count (normalisation)
    meta/tasks.parquet                           one row per task: its text (the pandas index "task"), task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode: episode_index, tasks, length, where its rows
                                                 (data/chunk_index, data/file_index, dataset_from_index,
                                                 dataset_to_index) and frames (videos/<key>/chunk_index, file_index,
                                                 from_timestamp, to_timestamp) are
    data/chunk-000/file-000.parquet              one row per frame, many episodes per file: timestamp, frame_index,
                                                 episode_index, index, task_index and the non-video features
    videos/<key>/chunk-000/file-000.mp4          one camera's frames of many episodes, one after another

An episode's video frame for the data row with ``timestamp`` t sits at from_timestamp + t in its video file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
DEFAULT_CHUNK_SIZE = 1000  # files per chunk directory
DEFAULT_DATA_FILE_SIZE_MB = 100
DEFAULT_VIDEO_FILE_SIZE_MB = 200

# Every v3 dataset has these per-frame columns (lerobot.utils.constants.DEFAULT_FEATURES).
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
CAMERA_DTYPES = ("video", "image")


class LeRobotFormatError(ValueError):
    """A directory that is not a LeRobotDataset v3 dataset, or one this reader cannot use."""


def next_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) after this one: a chunk directory holds at most ``chunks_size`` files."""
    file_index += 1
    if file_index >= chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")


def read_info(root: Path) -> dict:
    """meta/info.json, checked for what this reader relies on."""
    path = Path(root) / INFO_PATH
    if not path.is_file():
        raise LeRobotFormatError(f"no {INFO_PATH} in {root}: not a LeRobotDataset")
    info = json.loads(path.read_text(encoding="utf-8"))
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        # v2.x keeps one parquet/mp4 per episode and other metadata files; lerobot converts it.
        raise LeRobotFormatError(
            f"{root} is a LeRobotDataset {version or '(no codebase_version)'}; this reader needs v3.x (convert with "
            "lerobot: python -m lerobot.scripts.convert_dataset_v21_to_v30)")
    for key in ("fps", "features", "data_path"):
        if key not in info:
            raise LeRobotFormatError(f"{path} lacks '{key}'")
    if not info["fps"] or float(info["fps"]) <= 0:
        raise LeRobotFormatError(f"{path}: fps must be positive, got {info['fps']!r}")
    return info


def feature_names(feature: dict) -> list[str] | None:
    """A feature's element names: a list, or (older datasets) a dict holding one list, e.g. {"motors": [...]}."""
    names = feature.get("names")
    if isinstance(names, dict):
        lists = [value for value in names.values() if isinstance(value, list)]
        names = lists[0] if len(lists) == 1 else None
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return names
    return None


def feature_width(feature: dict) -> int:
    """Elements per frame of a 1-d numeric feature (shape [n]); 0 for anything else."""
    shape = feature.get("shape") or []
    return int(shape[0]) if len(shape) == 1 else 0


# pandas metadata that makes pandas (lerobot's load_tasks) read "task" back as the index, as lerobot writes it.
def _tasks_pandas_metadata() -> bytes:
    return json.dumps({
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }).encode("utf-8")


def write_tasks(root: Path, tasks: list[str]) -> None:
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    table = table.replace_schema_metadata({b"pandas": _tasks_pandas_metadata()})
    path = Path(root) / TASKS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task text. The text is the pandas index, stored as column "task" (or "__index_level_0__"
    when a writer left the index unnamed)."""
    path = Path(root) / TASKS_PATH
    if not path.is_file():
        raise LeRobotFormatError(f"no {TASKS_PATH} in {root}")
    table = pq.read_table(path)
    text_column = next((name for name in ("task", "__index_level_0__") if name in table.column_names), None)
    if text_column is None or "task_index" not in table.column_names:
        raise LeRobotFormatError(f"{path} has no task text and task_index columns: {table.column_names}")
    return dict(zip(table.column("task_index").to_pylist(), table.column(text_column).to_pylist()))


def read_episodes(root: Path) -> list[dict]:
    """The episode rows of every meta/episodes/chunk-*/file-*.parquet, without the per-episode stats columns,
    ordered by episode_index."""
    paths = sorted((Path(root) / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not paths:
        raise LeRobotFormatError(f"no episode metadata ({EPISODES_DIR}/chunk-*/file-*.parquet) in {root}")
    rows: list[dict] = []
    for path in paths:
        schema = pq.read_schema(path)
        columns = [name for name in schema.names if not name.startswith("stats/")]
        rows.extend(pq.read_table(path, columns=columns).to_pylist())
    rows.sort(key=lambda row: row["episode_index"])
    return rows


def write_episodes(root: Path, rows: list[dict]) -> None:
    path = Path(root) / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def column_values(column: pa.ChunkedArray) -> np.ndarray:
    """A parquet column as numpy: (N,) for scalars, (N, n) for fixed-size or equal-length list columns."""
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        return np.asarray(array.flatten().to_numpy(zero_copy_only=False)).reshape(len(array), array.type.list_size)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        values = array.to_pylist()
        return np.asarray(values, dtype=np.float64) if values else np.zeros((0, 0))
    return np.asarray(array.to_numpy(zero_copy_only=False))
