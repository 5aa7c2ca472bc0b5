"""rt1-import-lerobot on a hand-written LeRobotDataset v3.0 fixture, built here with pyarrow and PyAV alone the way
lerobot writes one (not by rt1-export-lerobot): AV1 video as lerobot encodes by default, two episodes sharing one
video and data file and a third in the next ones, pandas-style tasks.parquet, per-episode stats columns, absolute
end-effector positions in observation.state and base velocities plus a gripper percentage in action."""
from __future__ import annotations

import json
import shutil
import textwrap
from fractions import Fraction

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rt1_ros.configuration.action_layout import MODE_DIM, Mode
from rt1_ros.data import lerobot_import
from rt1_ros.data.dataset import EpisodeDataset
from rt1_ros.data.lerobot_format import LeRobotFormatError, read_info
from rt1_ros.data.lerobot_import import LeRobotImportError, import_dataset
from rt1_ros.data.lerobot_mapping import MappingError, load_mapping, parse_mapping

FPS = 10
HEIGHT, WIDTH = 48, 64
LENGTHS = (5, 4, 6)
TASKS = ("pick up the sponge", "open the drawer")
EPISODE_TASK = (0, 1, 0)
# (episode -> (data file, video file)): episodes 0 and 1 share file-000, episode 2 is in file-001.
FILES = (0, 0, 1)
CAMERA = "observation.images.front"


def frame_level(episode: int, frame: int) -> int:
    """Each frame is one flat grey level, so the decoded frame tells which (episode, frame) it is."""
    return 20 + 10 * frame + 60 * episode


def state(episode: int, length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float32)
    return np.stack([0.3 + 0.01 * t * (episode + 1), 0.1 - 0.02 * t, 0.2 + 0.005 * t, 0.5 * t], axis=1)


def action(episode: int, length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float32)
    base_vx = np.full(length, 0.1 * episode, np.float32)
    base_vx[0] = 0.9 if episode == 2 else base_vx[0]  # beyond the action space's 0.5 m/s: clipped on import
    return np.stack([base_vx, np.zeros(length), 0.05 * t, np.full(length, 80.0)], axis=1).astype(np.float32)


def write_av1(path, levels: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libsvtav1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"g": "2", "crf": "30", "preset": "12", "svtav1-params": "log-level=0"}
        for pts, level in enumerate(levels):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), level, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot_v3") / "mobile_pick"
    episodes, data_rows, video_levels = [], {0: [], 1: []}, {0: [], 1: []}
    index = 0
    for episode, length in enumerate(LENGTHS):
        file = FILES[episode]
        from_ts = len(video_levels[file]) / FPS
        video_levels[file] += [frame_level(episode, f) for f in range(length)]
        st, ac = state(episode, length), action(episode, length)
        for f in range(length):
            data_rows[file].append({"observation.state": st[f].tolist(), "action": ac[f].tolist(),
                                    "timestamp": f / FPS, "frame_index": f, "episode_index": episode,
                                    "index": index + f, "task_index": EPISODE_TASK[episode]})
        episodes.append({"episode_index": episode, "tasks": [TASKS[EPISODE_TASK[episode]]], "length": length,
                         "data/chunk_index": 0, "data/file_index": file, "dataset_from_index": index,
                         "dataset_to_index": index + length, f"videos/{CAMERA}/chunk_index": 0,
                         f"videos/{CAMERA}/file_index": file, f"videos/{CAMERA}/from_timestamp": from_ts,
                         f"videos/{CAMERA}/to_timestamp": from_ts + length / FPS, "meta/episodes/chunk_index": 0,
                         "meta/episodes/file_index": 0, "stats/action/mean": ac.mean(axis=0).tolist()})
        index += length
    schema = pa.schema([("observation.state", pa.list_(pa.float32(), 4)), ("action", pa.list_(pa.float32(), 4)),
                        ("timestamp", pa.float32()), ("frame_index", pa.int64()), ("episode_index", pa.int64()),
                        ("index", pa.int64()), ("task_index", pa.int64())])
    for file in (0, 1):
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(data_rows[file], schema=schema),
                       root / f"data/chunk-000/file-{file:03d}.parquet")
        write_av1(root / f"videos/{CAMERA}/chunk-000/file-{file:03d}.mp4", video_levels[file])
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(episodes), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "task": list(TASKS)}), root / "meta/tasks.parquet")
    info = {
        "codebase_version": "v3.0", "robot_type": "mobile_so100", "total_episodes": 3, "total_frames": index,
        "total_tasks": 2, "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "fps": FPS, "splits": {"train": "0:3"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "wrist"]},
            "action": {"dtype": "float32", "shape": [4], "names": {"motors": ["vx", "vy", "vyaw", "gripper_pct"]}},
            CAMERA: {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "names": ["height", "width", "channels"],
                     "info": {"video.codec": "av1", "video.pix_fmt": "yuv420p", "video.fps": FPS}},
            **{name: {"dtype": "int64" if name != "timestamp" else "float32", "shape": [1], "names": None}
               for name in ("timestamp", "frame_index", "episode_index", "index", "task_index")},
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info), encoding="utf-8")
    return root


MAPPING = textwrap.dedent("""\
    camera: observation.images.front
    task_family: mobile_pick
    dimensions:
      arm_x: {feature: observation.state, name: x, delta: true}
      arm_y: {feature: observation.state, index: 1, delta: true}
      arm_z: {feature: observation.state, name: z, delta: true}
      arm_roll: {constant: 0.0}
      arm_pitch: {constant: 0.0}
      arm_yaw: {constant: 0}
      gripper: {feature: action, name: gripper_pct, scale: 0.01}
      base_x: {feature: action, name: vx}
      base_y: {feature: action, name: vy}
      base_yaw: {feature: action, name: vyaw}
      mode: {constant: arm}
    terminate_last_step: true
    """)


@pytest.fixture()
def mapping_file(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def test_import_maps_features_onto_rt1_actions_and_finds_each_frame(fixture_root, mapping_file, tmp_path, capsys):
    output = tmp_path / "rt1"
    assert lerobot_import.main([str(fixture_root), "--mapping", str(mapping_file), "--output", str(output)]) == 0
    assert "base_x: 1 value(s) outside the action-space range, clipped" in capsys.readouterr().out
    dataset = EpisodeDataset(output)
    assert [e.info.num_steps for e in dataset] == list(LENGTHS)
    for episode, imported in enumerate(dataset):
        length = LENGTHS[episode]
        assert imported.info.instruction == TASKS[EPISODE_TASK[episode]]
        assert imported.info.task_family == "mobile_pick" and imported.info.seed == episode
        assert imported.info.source == "lerobot:mobile_pick" and imported.info.fps == FPS
        st, ac = state(episode, length).astype(np.float64), action(episode, length).astype(np.float64)
        expected = np.zeros((length, 11))
        expected[:-1, 0:3] = np.diff(st[:, 0:3], axis=0)  # absolute position -> per-step delta, last step 0
        expected[:, 6] = ac[:, 3] * 0.01
        expected[:, 7:10] = np.clip(ac[:, 0:3], [-0.5, -0.5, -1.0], [0.5, 0.5, 1.0])
        expected[-1, 7:10] = 0.0  # terminate_last_step: no motion, mode terminate
        expected[:-1, MODE_DIM] = Mode.ARM
        expected[-1, MODE_DIM] = Mode.TERMINATE
        np.testing.assert_allclose(imported.actions, expected, atol=1e-6)
        frames = np.asarray(imported.frames)
        assert frames.shape == (length, HEIGHT, WIDTH, 3)
        levels = frames.reshape(length, -1).mean(axis=1)
        np.testing.assert_allclose(levels, [frame_level(episode, f) for f in range(length)], atol=3.0)


def test_import_resizes_and_selects_episodes(fixture_root, mapping_file, tmp_path):
    mapping = load_mapping(mapping_file, read_info(fixture_root)["features"])
    written = import_dataset(fixture_root, mapping, tmp_path / "rt1", frame_size=32, episode_indices=[2],
                             log=lambda line: None)
    assert [e.info.seed for e in written] == [2] and np.asarray(written[0].frames).shape == (6, 32, 32, 3)
    with pytest.raises(LeRobotImportError, match=r"no episode\(s\) \[7\]"):
        import_dataset(fixture_root, mapping, tmp_path / "rt1", episode_indices=[7])


def test_video_frames_must_sit_at_the_rows_timestamps(fixture_root, mapping_file, tmp_path):
    """A video whose frames do not lie where the rows say (within the tolerance) is refused, not guessed at."""
    mapping = load_mapping(mapping_file, read_info(fixture_root)["features"])
    # Every episode's from_timestamp moved by half a frame: no decoded frame lies within the tolerance.
    episodes_path = tmp_path / "shifted"
    shutil.copytree(fixture_root, episodes_path)
    table = pq.read_table(episodes_path / "meta/episodes/chunk-000/file-000.parquet")
    column = f"videos/{CAMERA}/from_timestamp"
    shifted = pa.array([value + 0.05 for value in table.column(column).to_pylist()])
    table = table.set_column(table.schema.get_field_index(column), column, shifted)
    pq.write_table(table, episodes_path / "meta/episodes/chunk-000/file-000.parquet")
    with pytest.raises(LeRobotImportError, match="episode 0: .*no frame within 0.0001 s"):
        import_dataset(episodes_path, mapping, tmp_path / "rt1_out", log=lambda line: None)


def mapping_error(fixture_root, text: str) -> str:
    from rt1_ros.configuration.yaml_config import safe_load

    with pytest.raises(MappingError) as error:
        parse_mapping(safe_load(text), read_info(fixture_root)["features"])
    return str(error.value)


def test_mapping_refuses_unmapped_dimensions_by_name(fixture_root):
    partial = "\n".join(line for line in MAPPING.splitlines() if "arm_roll:" not in line and "base_y:" not in line)
    message = mapping_error(fixture_root, partial)
    assert "arm_roll, base_y not mapped" in message and "constant" in message


@pytest.mark.parametrize("change, expected", [
    (("base_x: {feature: action, name: vx}", "base_x: {feature: effort, index: 0}"), "no feature 'effort'"),
    (("name: vx}", "name: velocity}"), "no element named 'velocity'"),
    (("index: 1, delta", "index: 4, delta"), "index 4 outside 'observation.state'"),
    (("mode: {constant: arm}", "mode: {constant: fly}"), "mode 'fly' is not one of"),
    (("camera: observation.images.front", "camera: observation.state"), "not a video or image feature"),
    (("base_y: {feature: action, name: vy}", "base_y: {feature: action, name: vy, gain: 2}"), "unknown key"),
    (("arm_roll: {constant: 0.0}", "arm_roll: {constant: 0.0, feature: action}"), "exactly one of"),
    (("arm_roll: {constant: 0.0}", "arm_roll: {constant: 0.0}\n  wrist_roll: {constant: 0.0}"),
     "not RT-1 dimensions"),
])
def test_mapping_errors_name_what_is_wrong(fixture_root, change, expected):
    old, new = change
    assert old in MAPPING
    assert expected in mapping_error(fixture_root, MAPPING.replace(old, new))


def test_older_layouts_are_refused_with_the_conversion_named(fixture_root, tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30, "features": {}}))
    with pytest.raises(LeRobotFormatError, match="v2.1.*convert_dataset_v21_to_v30"):
        read_info(tmp_path)
    with pytest.raises(LeRobotFormatError, match="not a LeRobotDataset"):
        read_info(tmp_path / "meta")


def test_image_features_import_from_the_png_bytes_in_the_data_rows(tmp_path):
    """Datasets recorded without video keep each frame as PNG bytes in the parquet row ({"bytes", "path"})."""
    import cv2

    root = tmp_path / "images"
    levels = [30, 90, 150]
    png = [cv2.imencode(".png", np.full((24, 32, 3), level, np.uint8))[1].tobytes() for level in levels]
    rows = [{"observation.image": {"bytes": png[f], "path": None}, "action": [0.01 * f], "timestamp": f / FPS,
             "frame_index": f, "episode_index": 0, "index": f, "task_index": 0} for f in range(3)]
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data/chunk-000/file-000.parquet")
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"episode_index": 0, "tasks": ["push"], "length": 3, "data/chunk_index": 0,
                                          "data/file_index": 0}]), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["push the block"]}), root / "meta/tasks.parquet")
    features = {"observation.image": {"dtype": "image", "shape": [24, 32, 3], "names": ["height", "width", "channel"]},
                "action": {"dtype": "float32", "shape": [1], "names": ["dx"]}}
    (root / "meta/info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": FPS, "features": features,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}))
    text = "\n".join(["camera: observation.image", "dimensions:", "  arm_x: {feature: action, name: dx}"]
                     + [f"  {name}: {{constant: 0}}" for name in ("arm_y", "arm_z", "arm_roll", "arm_pitch",
                                                                   "arm_yaw", "gripper", "base_x", "base_y",
                                                                   "base_yaw", "mode")])
    (tmp_path / "mapping.yaml").write_text(text)
    mapping = load_mapping(tmp_path / "mapping.yaml", features)
    (episode,) = import_dataset(root, mapping, tmp_path / "rt1", log=lambda line: None)
    assert episode.info.instruction == "push the block"
    np.testing.assert_array_equal(np.asarray(episode.frames).reshape(3, -1).max(axis=1), levels)  # PNG: lossless
    np.testing.assert_allclose(episode.actions[:, 0], [0.0, 0.01, 0.02], atol=1e-7)
