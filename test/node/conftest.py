import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from ros_harness import RosHarness, biased_checkpoint  # noqa: E402

BIN_MAX, BIN_MIN = 255, 0


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


# Biased tiny checkpoints shared by the fault and separate-process tests (test files may define their own).
@pytest.fixture(scope="module")
def drive_checkpoint(tmp_path_factory):
    """Base mode, full speed forward, full yaw rate one way."""
    return biased_checkpoint(tmp_path_factory.mktemp("drive"), mode=1, bins={7: BIN_MAX, 9: BIN_MIN})


@pytest.fixture(scope="module")
def arm_checkpoint(tmp_path_factory):
    """Arm mode, full upward delta, gripper closed."""
    return biased_checkpoint(tmp_path_factory.mktemp("arm"), mode=0, bins={2: BIN_MAX, 6: BIN_MAX})
