"""rt1-export-lerobot: an rt1_ros episode dataset -> a LeRobotDataset v3.0 directory (rt1_ros.data.lerobot_format).

    rt1-export-lerobot data/rt1_sim exported/rt1_sim --repo-id me/rt1_sim

What is written
* one task per distinct instruction (meta/tasks.parquet); every frame's task_index points at its episode's;
* ``action``: the 11-d RT-1 action as float32, named by rt1_ros.configuration.action_layout.DIMENSION_NAMES (arm deltas in m and
  rad per step, gripper closedness, base velocities, and the mode class index 0 arm / 1 base / 2 terminate);
* the camera as video ``observation.images.camera`` (H.264, rt1_ros.data.lerobot_video), episodes one after
  another in each file, a new file once one passes --video-file-size-mb (and a new data parquet past
  --data-file-size-mb), chunk directories of at most 1000 files;
* timestamp = frame_index / fps (the episodes' control rate, which must be a whole number of Hz and one for all);
* the rt1_ros episode metadata as extra episode columns (rt1/episode_id, rt1/task_family, rt1/seed, rt1/success,
  rt1/source), which rt1-import-lerobot restores and the lerobot reader keeps as they are;
* meta/stats.json over every frame.
The directory is built beside the target as ``<dir>.partial`` and renamed into place when complete.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rt1_ros.configuration.action_layout import DIMENSION_NAMES, NUM_ACTION_DIMS
from rt1_ros.data.dataset import Episode, EpisodeDataset
from rt1_ros.data.lerobot_format import (CODEBASE_VERSION, DATA_PATH, DEFAULT_CHUNK_SIZE, DEFAULT_DATA_FILE_SIZE_MB,
                                         DEFAULT_VIDEO_FILE_SIZE_MB, INDEX_FEATURES, INFO_PATH, STATS_PATH, VIDEO_PATH,
                                         next_file, write_episodes, write_json, write_tasks)
from rt1_ros.data.lerobot_stats import RunningStats
from rt1_ros.data.lerobot_video import DEFAULT_CRF, Mp4Writer, video_feature_info

DEFAULT_CAMERA_KEY = "observation.images.camera"
RT1_EPISODE_COLUMNS = ("episode_id", "task_family", "seed", "success", "source")  # stored as rt1/<name>

DATA_SCHEMA = pa.schema([
    ("action", pa.list_(pa.float32(), NUM_ACTION_DIMS)),
    ("timestamp", pa.float32()),
    ("frame_index", pa.int64()),
    ("episode_index", pa.int64()),
    ("index", pa.int64()),
    ("task_index", pa.int64()),
])


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class ExportSettings:
    camera_key: str = DEFAULT_CAMERA_KEY
    robot_type: str | None = None
    crf: int = DEFAULT_CRF
    chunks_size: int = DEFAULT_CHUNK_SIZE
    data_file_size_mb: float = DEFAULT_DATA_FILE_SIZE_MB
    video_file_size_mb: float = DEFAULT_VIDEO_FILE_SIZE_MB

    def __post_init__(self) -> None:
        # lerobot's DatasetInfo refuses non-positive limits (a tiny one still gives one episode per file).
        if not (self.data_file_size_mb > 0 and self.video_file_size_mb > 0 and self.chunks_size > 0):
            raise ExportError("file size limits and chunks_size must be positive")


def common_fps(episodes: list[Episode]) -> int:
    rates = {float(e.info.fps) for e in episodes}
    if len(rates) != 1:
        raise ExportError(f"a LeRobotDataset has one fps; these episodes were recorded at {sorted(rates)} Hz")
    fps = rates.pop()
    if fps <= 0 or not float(fps).is_integer():
        raise ExportError(f"LeRobotDataset fps is a whole number of Hz; the episodes' control rate is {fps}")
    return int(fps)


def common_frame_shape(episodes: list[Episode]) -> tuple[int, int]:
    shapes = {(e.info.frame_height, e.info.frame_width) for e in episodes}
    if len(shapes) != 1:
        raise ExportError(f"one camera feature has one frame shape; these episodes have {sorted(shapes)} "
                          "(resize them to one size first)")
    height, width = shapes.pop()
    if height % 2 or width % 2:
        raise ExportError(f"H.264 yuv420p video needs even frame sides; the frames are {height}x{width}")
    return height, width


class ShardedFile:
    """Which chunk-XXX/file-XXX a stream of episodes goes to: the next file once the current one is past its size
    limit (checked between episodes, so an episode never spans two files)."""

    def __init__(self, chunks_size: int, limit_mb: float) -> None:
        self.chunks_size = chunks_size
        self.limit_mb = limit_mb
        self.chunk_index = self.file_index = 0

    def advance(self) -> None:
        self.chunk_index, self.file_index = next_file(self.chunk_index, self.file_index, self.chunks_size)


def _json_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def export_dataset(episodes: list[Episode], output: Path, settings: ExportSettings = ExportSettings()) -> dict:
    """Writes ``episodes`` as a LeRobotDataset v3.0 at ``output`` (which must not exist); returns its info.json."""
    output = Path(output)
    if not episodes:
        raise ExportError("no episodes to export")
    if output.exists():
        raise ExportError(f"{output} exists; export into a new directory")
    fps = common_fps(episodes)
    height, width = common_frame_shape(episodes)
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a previous export that died half-way
    partial.mkdir(parents=True)

    tasks: dict[str, int] = {}
    episode_rows: list[dict] = []
    stats = {"action": RunningStats(), **{name: RunningStats() for name in INDEX_FEATURES},
             settings.camera_key: RunningStats(axes=(0, 1, 2), scale=1.0 / 255.0, keep_dims=True)}
    data_slot = ShardedFile(settings.chunks_size, settings.data_file_size_mb)
    video_slot = ShardedFile(settings.chunks_size, settings.video_file_size_mb)
    data_path = video_path = None
    data_writer: pq.ParquetWriter | None = None
    video_writer: Mp4Writer | None = None
    first_video: Path | None = None
    total_frames = 0
    try:
        for episode_index, episode in enumerate(episodes):
            frames, actions = np.asarray(episode.frames), episode.actions.astype(np.float32)
            length = len(actions)
            task_index = tasks.setdefault(episode.info.instruction, len(tasks))

            if data_writer is not None and data_path.stat().st_size / 1e6 >= data_slot.limit_mb:
                data_writer.close()
                data_writer = None
                data_slot.advance()
            if data_writer is None:
                data_path = partial / DATA_PATH.format(chunk_index=data_slot.chunk_index,
                                                       file_index=data_slot.file_index)
                data_path.parent.mkdir(parents=True, exist_ok=True)
                data_writer = pq.ParquetWriter(data_path, DATA_SCHEMA)
            frame_index = np.arange(length, dtype=np.int64)
            columns = {
                "action": actions,
                "timestamp": (frame_index / fps).astype(np.float32),
                "frame_index": frame_index,
                "episode_index": np.full(length, episode_index, dtype=np.int64),
                "index": total_frames + frame_index,
                "task_index": np.full(length, task_index, dtype=np.int64),
            }
            action_array = pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), NUM_ACTION_DIMS)
            data_writer.write_table(pa.table(
                [action_array] + [pa.array(columns[name]) for name in DATA_SCHEMA.names[1:]], schema=DATA_SCHEMA))

            if video_writer is not None and video_writer.size_mb() >= video_slot.limit_mb:
                video_writer.close()
                video_writer = None
                video_slot.advance()
            if video_writer is None:
                video_path = partial / VIDEO_PATH.format(video_key=settings.camera_key,
                                                         chunk_index=video_slot.chunk_index,
                                                         file_index=video_slot.file_index)
                video_writer = Mp4Writer(video_path, fps, width, height, crf=settings.crf)
                first_video = first_video or video_path
            from_timestamp = video_writer.position_s
            video_writer.write(frames)

            for name, values in columns.items():
                stats[name].add(values)
            stats[settings.camera_key].add(frames)
            row = {
                "episode_index": episode_index,
                "tasks": [episode.info.instruction],
                "length": length,
                "data/chunk_index": data_slot.chunk_index,
                "data/file_index": data_slot.file_index,
                "dataset_from_index": total_frames,
                "dataset_to_index": total_frames + length,
                f"videos/{settings.camera_key}/chunk_index": video_slot.chunk_index,
                f"videos/{settings.camera_key}/file_index": video_slot.file_index,
                f"videos/{settings.camera_key}/from_timestamp": from_timestamp,
                f"videos/{settings.camera_key}/to_timestamp": video_writer.position_s,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
            }
            row.update({f"rt1/{name}": getattr(episode.info, name) for name in RT1_EPISODE_COLUMNS})
            episode_rows.append(row)
            total_frames += length
    finally:
        if data_writer is not None:
            data_writer.close()
        if video_writer is not None:
            video_writer.close()

    features = {
        "action": {"dtype": "float32", "shape": [NUM_ACTION_DIMS], "names": list(DIMENSION_NAMES)},
        settings.camera_key: {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
                              "info": video_feature_info(first_video, fps)},
        **INDEX_FEATURES,
    }
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": settings.robot_type,
        "total_episodes": len(episodes),
        "total_frames": total_frames,
        "total_tasks": len(tasks),
        "chunks_size": settings.chunks_size,
        "data_files_size_in_mb": _json_number(settings.data_file_size_mb),
        "video_files_size_in_mb": _json_number(settings.video_file_size_mb),
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }
    write_tasks(partial, list(tasks))
    write_episodes(partial, episode_rows)
    write_json(partial / STATS_PATH, {name: accumulator.as_json() for name, accumulator in stats.items()})
    write_json(partial / INFO_PATH, info)
    partial.rename(output)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-export-lerobot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="rt1_ros episode dataset (manifest.jsonl)")
    parser.add_argument("output", help="LeRobotDataset directory to create")
    parser.add_argument("--families", nargs="+", help="only these task families")
    parser.add_argument("--successful-only", action="store_true", help="skip episodes marked unsuccessful")
    defaults = ExportSettings()
    parser.add_argument("--camera-key", default=defaults.camera_key)
    parser.add_argument("--robot-type", default=defaults.robot_type)
    parser.add_argument("--crf", type=int, default=defaults.crf, help="x264 quality, 0 (lossless luma) to 51")
    parser.add_argument("--data-file-size-mb", type=float, default=defaults.data_file_size_mb)
    parser.add_argument("--video-file-size-mb", type=float, default=defaults.video_file_size_mb)
    args = parser.parse_args(argv)
    episodes = list(EpisodeDataset(args.dataset, families=args.families, successful_only=args.successful_only))
    try:
        settings = ExportSettings(camera_key=args.camera_key, robot_type=args.robot_type, crf=args.crf,
                                  data_file_size_mb=args.data_file_size_mb,
                                  video_file_size_mb=args.video_file_size_mb)
        info = export_dataset(episodes, Path(args.output), settings)
    except ExportError as exc:
        print(f"rt1-export-lerobot: {exc}", file=sys.stderr)
        return 2
    print(f"{args.output}: LeRobotDataset {info['codebase_version']}, {info['total_episodes']} episode(s), "
          f"{info['total_frames']} frames, {info['total_tasks']} task(s) at {info['fps']} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
