import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from ros_harness import RosHarness  # noqa: E402


@pytest.fixture(scope="module")
def ros():
    harness = RosHarness()
    yield harness
    harness.close()
