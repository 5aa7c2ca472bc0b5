"""rt1-import-lerobot: a LeRobotDataset v3.0 directory -> rt1_ros episodes, through a declared mapping
(rt1_ros.data.lerobot_mapping; config/lerobot_mapping_rt1.yaml maps rt1-export-lerobot's own output back).

    rt1-import-lerobot ~/datasets/koch_pick --mapping koch_mapping.yaml --output data/koch --frame-size 144

Per episode (meta/episodes), in episode_index order:
* its data rows (data/chunk-XXX/file-XXX.parquet, read with pyarrow), ordered by frame_index;
* the actions: the mapping applied to the mapped feature columns, then clipped to the action-space ranges
  (config/action_space.yaml), as the tokenizer would; how many values were clipped is reported per dimension;
* the camera: for a video feature, the frame at from_timestamp + timestamp of each row in the episode's video
  file (decoded with PyAV, any codec FFmpeg reads; a frame must lie within --tolerance-s of that time, as in
  lerobot's own reader); for an image feature, the PNG/JPEG bytes in the data row; optionally resized to
  --frame-size (square, like rt1-generate's frames);
* the instruction: the task of the episode's first frame (or the mapping's fixed text).
Episodes exported by rt1-export-lerobot keep their family, seed, success and source (rt1/* episode columns); any
other dataset's are family ``lerobot`` (or the mapping's task_family), seed = episode_index, success true, source
``lerobot:<directory name>``. Episodes already in the output (same source, family, seed) are skipped, so an
interrupted import resumes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rt1_ros.configuration.action_layout import CONTINUOUS_DIMS, DIMENSION_NAMES, MODE_DIM, ActionSpaceConfig
from rt1_ros.data.dataset import EpisodeInfo, EpisodeWriter, open_or_empty
from rt1_ros.data.lerobot_format import LeRobotFormatError, column_values, read_episodes, read_info, read_tasks
from rt1_ros.data.lerobot_mapping import LeRobotMapping, MappingError, load_mapping
from rt1_ros.data.lerobot_video import VideoFormatError, read_frames_at
from rt1_ros.inference.image_decoding import resize_for_model

DEFAULT_TOLERANCE_S = 1e-4  # lerobot's LeRobotDataset default


class LeRobotImportError(ValueError):
    """An episode that cannot be imported (named in the message)."""


class DataFiles:
    """The data parquet files of a dataset, the last one read kept open (episodes are stored in order, so a file
    is read once)."""

    def __init__(self, root: Path, info: dict, columns: list[str]) -> None:
        self.root, self.template, self.columns = root, info["data_path"], columns
        self._path: Path | None = None
        self._table = None

    def episode_rows(self, episode: dict):
        """The episode's rows (a pyarrow table of the wanted columns), in frame_index order."""
        path = self.root / self.template.format(chunk_index=episode["data/chunk_index"],
                                                file_index=episode["data/file_index"])
        if path != self._path:
            self._table, self._path = pq.read_table(path, columns=self.columns), path
        rows = self._table.filter(pc.equal(self._table.column("episode_index"), episode["episode_index"]))
        return rows.sort_by("frame_index")


def camera_frames(root: Path, info: dict, episode: dict, camera: str, rows, tolerance_s: float) -> np.ndarray:
    feature = info["features"][camera]
    if feature["dtype"] == "video":
        key = f"videos/{camera}"
        path = root / info["video_path"].format(video_key=camera, chunk_index=episode[f"{key}/chunk_index"],
                                                file_index=episode[f"{key}/file_index"])
        times = episode[f"{key}/from_timestamp"] + column_values(rows.column("timestamp")).astype(np.float64)
        return read_frames_at(path, times, tolerance_s)
    images = []
    for cell in rows.column(camera).to_pylist():  # image features: {"bytes": PNG/JPEG, "path": ...} structs
        encoded = cell.get("bytes") if isinstance(cell, dict) else None
        if not encoded:
            raise LeRobotImportError(f"episode {episode['episode_index']}: image feature {camera!r} holds no bytes")
        bgr = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise LeRobotImportError(f"episode {episode['episode_index']}: an image of {camera!r} does not decode")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return np.stack(images)


def clip_to_action_space(actions: np.ndarray, space: ActionSpaceConfig, clipped: np.ndarray) -> np.ndarray:
    """Clip the continuous dimensions to the ranges and the mode to a class index; ``clipped`` counts per dim."""
    low, high = space.low, space.high
    continuous = actions[:, :CONTINUOUS_DIMS]
    clipped[:CONTINUOUS_DIMS] += ((continuous < low) | (continuous > high)).sum(axis=0)
    actions[:, :CONTINUOUS_DIMS] = np.clip(continuous, low, high)
    mode = np.rint(actions[:, MODE_DIM])
    outside = (mode < 0) | (mode >= len(space.mode_classes)) | (mode != actions[:, MODE_DIM])
    if outside.any():
        raise LeRobotImportError(f"mode values {np.unique(actions[outside, MODE_DIM])[:5]} are not class indices "
                           f"0..{len(space.mode_classes) - 1}")
    actions[:, MODE_DIM] = mode
    return actions


def import_dataset(root: Path, mapping: LeRobotMapping, output: Path, frame_size: int | None = None,
                   tolerance_s: float = DEFAULT_TOLERANCE_S, episode_indices: list[int] | None = None,
                   space: ActionSpaceConfig | None = None, log=print) -> list:
    root = Path(root)
    info = read_info(root)
    fps = float(info["fps"])
    tasks = read_tasks(root)
    episodes = read_episodes(root)
    if episode_indices is not None:
        wanted = set(episode_indices)
        unknown = wanted - {e["episode_index"] for e in episodes}
        if unknown:
            raise LeRobotImportError(f"no episode(s) {sorted(unknown)} in {root}")
        episodes = [e for e in episodes if e["episode_index"] in wanted]
    space = space or ActionSpaceConfig.from_yaml()
    camera_in_data = info["features"][mapping.camera]["dtype"] == "image"
    columns = sorted(mapping.features | {"timestamp", "frame_index", "episode_index", "task_index"}
                     | ({mapping.camera} if camera_in_data else set()))
    data = DataFiles(root, info, columns)
    existing = open_or_empty(output)
    done = existing.existing_keys() if existing is not None else set()
    writer = EpisodeWriter(output)
    clipped = np.zeros(len(DIMENSION_NAMES), dtype=np.int64)
    written = []
    for episode in episodes:
        index = int(episode["episode_index"])
        source = episode.get("rt1/source") or f"lerobot:{root.name}"
        family = episode.get("rt1/task_family") or mapping.task_family or "lerobot"
        seed = int(episode["rt1/seed"]) if episode.get("rt1/seed") is not None else index
        if (source, family, seed) in done:
            continue
        rows = data.episode_rows(episode)
        length = rows.num_rows
        if length == 0:
            raise LeRobotImportError(f"episode {index}: no data rows in its data file")
        if episode.get("length") is not None and int(episode["length"]) != length:
            raise LeRobotImportError(f"episode {index}: meta/episodes says {episode['length']} frames, data has "
                                     f"{length}")
        values = {name: column_values(rows.column(name)) for name in mapping.features | {"task_index"}}
        try:
            frames = camera_frames(root, info, episode, mapping.camera, rows, tolerance_s)
        except VideoFormatError as exc:
            raise LeRobotImportError(f"episode {index}: {exc}") from exc
        if frame_size:
            frames = np.stack([resize_for_model(frame, frame_size) for frame in frames])
        try:
            actions = clip_to_action_space(mapping.actions(values, length), space, clipped)
        except LeRobotImportError as exc:
            raise LeRobotImportError(f"episode {index}: {exc}") from exc
        instruction = mapping.instruction_text or tasks[int(values["task_index"][0])]
        episode_info = EpisodeInfo(
            instruction=instruction, task_family=family, seed=seed,
            success=bool(episode["rt1/success"]) if episode.get("rt1/success") is not None else True,
            source=source, fps=fps,
            episode_id=episode.get("rt1/episode_id") or "",
            extra={"lerobot": {"dataset": root.name, "episode_index": index, "camera": mapping.camera}})
        written.append(writer.write(frames, actions, episode_info))
    for name, count in zip(DIMENSION_NAMES, clipped):
        if count:
            log(f"  {name}: {count} value(s) outside the action-space range, clipped (config/action_space.yaml)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-import-lerobot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="LeRobotDataset v3 directory (meta/info.json)")
    parser.add_argument("--mapping", required=True, help="mapping YAML (docs/training.md, LeRobot's format)")
    parser.add_argument("--output", required=True, help="rt1_ros dataset directory (created; appended to)")
    parser.add_argument("--episodes", type=int, nargs="+", help="only these episode indices")
    parser.add_argument("--frame-size", type=int, help="resize frames to this square side (default: keep)")
    parser.add_argument("--tolerance-s", type=float, default=DEFAULT_TOLERANCE_S,
                        help="largest gap between a row's timestamp and its video frame")
    args = parser.parse_args(argv)
    try:
        info = read_info(Path(args.dataset))
        mapping = load_mapping(args.mapping, info["features"])
        episodes = import_dataset(Path(args.dataset), mapping, Path(args.output), frame_size=args.frame_size,
                                  tolerance_s=args.tolerance_s, episode_indices=args.episodes)
    except (LeRobotFormatError, MappingError, LeRobotImportError, ValueError) as exc:
        print(f"rt1-import-lerobot: {exc}", file=sys.stderr)
        return 2
    steps = sum(e.info.num_steps for e in episodes)
    print(f"{args.dataset}: {len(episodes)} episode(s) imported, {steps} steps -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
