"""rosbag2 import: a bag written here with rosbags' writer (MCAP and sqlite3) is aligned at the control rate."""
from __future__ import annotations

import numpy as np
import pytest

from rt1_ros.data.dataset import EpisodeDataset
from rt1_ros.data.rosbag_import import ImportSettings, import_bag, make_typestore

SECOND = 1_000_000_000
PERIOD = SECOND // 3
T0 = 5 * SECOND


def _write_bag(path, storage: str) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    typestore = make_typestore()
    types = typestore.types
    Time = types["builtin_interfaces/msg/Time"]
    Header = types["std_msgs/msg/Header"]
    Vector3 = types["geometry_msgs/msg/Vector3"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3

    def header(time_ns: int):
        return Header(stamp=Time(sec=time_ns // SECOND, nanosec=time_ns % SECOND), frame_id="camera")

    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {
            "image": writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=typestore),
            "instruction": writer.add_connection("/instruction", "std_msgs/msg/String", typestore=typestore),
            "twist": writer.add_connection("/cmd_vel", "geometry_msgs/msg/Twist", typestore=typestore),
            "arm": writer.add_connection("/arm_command", "rt1_ros/msg/ArmCommand", typestore=typestore),
        }
        messages = []
        messages.append((T0 - SECOND // 10, "instruction", types["std_msgs/msg/String"](data="pick up the red cube")))
        for k in range(6):
            # Frame k is filled with the value 40·k, so which image a tick took is readable from its pixels.
            stamp = T0 + k * PERIOD
            pixels = np.full((24, 32, 3), 40 * k, dtype=np.uint8)
            image = types["sensor_msgs/msg/Image"](header=header(stamp), height=24, width=32, encoding="rgb8",
                                                   is_bigendian=0, step=96, data=pixels.reshape(-1))
            messages.append((stamp, "image", image))

        def twist(vx: float):
            return types["geometry_msgs/msg/Twist"](linear=Vector3(x=vx, y=0.0, z=0.0),
                                                    angular=Vector3(x=0.0, y=0.0, z=0.1 if vx else 0.0))

        def arm(dx: float, gripper: float, stamp: int):
            return types["rt1_ros/msg/ArmCommand"](header=header(stamp), translation=Vector3(x=dx, y=0.0, z=0.0),
                                                   rotation=Vector3(x=0.0, y=0.0, z=0.05), gripper=gripper)

        # ticks 0 and 1: the base drives (one Twist each, 50 ms after the frame)
        messages.append((T0 + 50_000_000, "twist", twist(0.2)))
        messages.append((T0 + PERIOD + 50_000_000, "twist", twist(0.3)))
        # tick 2: the base stops, two arm deltas in the same period (they add up), gripper closes
        messages.append((T0 + 2 * PERIOD + 10_000_000, "twist", twist(0.0)))
        messages.append((T0 + 2 * PERIOD + 50_000_000, "arm", arm(0.01, 0.0, T0 + 2 * PERIOD)))
        messages.append((T0 + 2 * PERIOD + 150_000_000, "arm", arm(0.015, 1.0, T0 + 2 * PERIOD)))
        # tick 3: one delta; tick 4: nothing sent (arm holds, gripper stays closed); tick 5: the end -> terminate
        messages.append((T0 + 3 * PERIOD + 50_000_000, "arm", arm(-0.02, 1.0, T0 + 3 * PERIOD)))
        for time_ns, role, message in sorted(messages, key=lambda m: m[0]):
            writer.write(connections[role], time_ns, typestore.serialize_cdr(message, type(message).__msgtype__))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_import_aligns_frames_and_commands_at_the_control_rate(tmp_path, storage):
    bag = tmp_path / f"bag_{storage}"
    _write_bag(bag, storage)
    written = import_bag(bag, tmp_path / "dataset", ImportSettings(frame_size=16, task_family="pick"))
    assert len(written) == 1
    dataset = EpisodeDataset(tmp_path / "dataset")
    assert len(dataset) == 1
    episode = dataset[0]
    assert episode.info.instruction == "pick up the red cube"
    assert episode.info.source == f"rosbag:bag_{storage}"
    frames, actions = np.asarray(episode.frames), episode.actions
    assert frames.shape == (6, 16, 16, 3)
    # Tick k took image k, not a neighbour.
    np.testing.assert_array_equal(frames[:, 0, 0, 0], [0, 40, 80, 120, 160, 200])
    modes = actions[:, 10].astype(int).tolist()
    assert modes == [1, 1, 0, 0, 0, 2]  # base, base, arm, arm, arm, terminate
    np.testing.assert_allclose(actions[0, 7:10], [0.2, 0.0, 0.1], atol=1e-6)
    np.testing.assert_allclose(actions[1, 7:10], [0.3, 0.0, 0.1], atol=1e-6)
    assert np.all(actions[:2, 0:6] == 0.0)  # base mode: no arm motion recorded
    np.testing.assert_allclose(actions[2, 0], 0.025, atol=1e-6)  # two deltas of one period add up
    np.testing.assert_allclose(actions[2, 5], 0.10, atol=1e-6)
    assert actions[2, 6] == 1.0  # the last gripper command of the period
    np.testing.assert_allclose(actions[3, [0, 6]], [-0.02, 1.0], atol=1e-6)
    np.testing.assert_allclose(actions[4, 0:6], 0.0)  # nothing sent: arm holds still...
    assert actions[4, 6] == 1.0  # ...with the gripper in force
    assert np.all(actions[2:, 7:10] == 0.0)
    np.testing.assert_allclose(actions[5, :6], 0.0)
    assert actions[5, 6] == 1.0


def test_missing_camera_topic_is_reported(tmp_path):
    bag = tmp_path / "bag"
    _write_bag(bag, "mcap")
    with pytest.raises(SystemExit, match="/nope"):
        import_bag(bag, tmp_path / "dataset", ImportSettings(image_topic="/nope"))


def test_import_for_a_converted_release_keeps_the_aspect_and_clips_to_the_calibrated_ranges(tmp_path):
    """Frames stored HxW (the release's 4:5 survives to its 256×320 input); values clipped to a calibrated release's
    ranges in the robot's units: arm x at 0.02 m per unit covers ±0.02 m, so the 0.025 m step is cut to 0.02; the
    gripper's 0..1 (scale 0.5, offset 0.5 over -1..1) keeps its 1.0."""
    import yaml

    from rt1_ros.configuration.yaml_config import to_mapping
    from rt1_ros.convert.official_checkpoint import official_action_space
    from rt1_ros.data.rosbag_import import frame_size_argument

    space = to_mapping(official_action_space())
    space["dimensions"][0]["scale"] = 0.02
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(space), encoding="utf-8")
    _write_bag(tmp_path / "bag", "mcap")
    settings = ImportSettings(frame_size=frame_size_argument("16x20"), action_space_file=str(tmp_path / "robot.yaml"))
    import_bag(tmp_path / "bag", tmp_path / "dataset", settings)
    episode = EpisodeDataset(tmp_path / "dataset")[0]
    assert np.asarray(episode.frames).shape == (6, 16, 20, 3)
    np.testing.assert_allclose(episode.actions[2, [0, 6]], [0.02, 1.0], atol=1e-6)
    np.testing.assert_allclose(episode.actions[3, 0], -0.02, atol=1e-6)
    np.testing.assert_allclose(episode.actions[0, 7], 0.2, atol=1e-6)  # base x: ±1 m at scale 1
    assert frame_size_argument("112") == 112
    with pytest.raises(Exception, match="HxW"):
        frame_size_argument("256by320")
