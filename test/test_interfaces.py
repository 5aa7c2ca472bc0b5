"""The generated interfaces (msg/, srv/) with real rclpy over Fast DDS: import, constants, pub/sub, service.

Needs the interface build (`make setup`) and the environment of scripts/rt1-env (`make test` provides both).
Each test has its own graph (`rt1_ros.node.ros_graph.InProcessGraph`: a context on a private DDS domain, every node
spun in its own thread) and unique names, so it neither depends on nor disturbs other ROS tests. Tests wait for events
(a message arrived, a response came), each with a generous deadline.
"""
from __future__ import annotations

import math
import threading
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

try:
    import rclpy

    from rt1_ros.node import qos
    from rt1_ros.msg import ArmCommand, EpisodeStatus, RT1Action
    from rt1_ros.node.ros_graph import InProcessGraph
    from rt1_ros.srv import ResetEpisode
except ImportError as exc:  # pragma: no cover - a broken set-up must fail loudly, never skip
    pytest.fail(
        f"rclpy or the generated rt1_ros interfaces do not import ({exc}); run `make setup` and run tests through "
        "`scripts/rt1-env pytest` (or `make test`)",
        pytrace=False,
    )

import rt1_ros

pytestmark = pytest.mark.ros

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 30.0


# ----------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def make_node():
    """Makes spinning nodes in a graph of the test's own."""
    with InProcessGraph() as graph:
        yield lambda prefix: graph.add(rclpy.create_node(f"{prefix}_{uuid.uuid4().hex[:8]}", context=graph.context))


def unique_topic(name: str) -> str:
    return f"/rt1_ros_test_{uuid.uuid4().hex[:10]}/{name}"


def future_done(future, timeout_s: float = TIMEOUT_S) -> bool:
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return done.wait(timeout_s)


# ----------------------------------------------------------------------------------- import and constants
def test_generated_modules_join_the_source_package():
    import rt1_ros.msg
    import rt1_ros.srv
    import rt1_ros.configuration.yaml_config  # a module of the source tree, beside the generated ones

    assert rt1_ros.__version__ == "0.1.0", "rt1_ros/__init__.py did not run (namespace package shadowing?)"
    assert rt1_ros.msg.ArmCommand is ArmCommand
    assert rt1_ros.srv.ResetEpisode is ResetEpisode
    source = Path(rt1_ros.__file__).resolve().parent
    assert Path(rt1_ros.configuration.yaml_config.__file__).resolve().parent == source / "configuration"


def test_versions_agree():
    package_xml = ET.parse(REPO_ROOT / "package.xml").getroot()
    assert package_xml.findtext("name") == "rt1_ros"
    assert package_xml.findtext("version") == rt1_ros.__version__
    setup_py = (REPO_ROOT / "setup.py").read_text()
    assert f'version="{rt1_ros.__version__}"' in setup_py


def test_constants_and_field_types():
    assert (RT1Action.MODE_ARM, RT1Action.MODE_BASE, RT1Action.MODE_TERMINATE) == (0, 1, 2)
    assert RT1Action.MODE_HOLD == 255
    action = RT1Action()
    assert len(action.tokens) == 11
    assert len(action.arm) == 7
    assert len(action.base) == 3
    assert action.mode == 0 and action.enabled is False and action.inference_ms == 0.0

    fields = RT1Action.get_fields_and_field_types()
    assert fields["tokens"] == "uint8[11]"
    assert fields["arm"] == "float[7]"
    assert fields["base"] == "float[3]"
    assert fields["header"] == "std_msgs/Header"
    assert ArmCommand.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "translation": "geometry_msgs/Vector3",
        "rotation": "geometry_msgs/Vector3",
        "gripper": "float",
    }
    assert set(EpisodeStatus.get_fields_and_field_types()) == {
        "header", "instruction", "task_family", "seed", "step", "elapsed_s", "success", "done",
    }
    assert set(ResetEpisode.Request.get_fields_and_field_types()) == {"task_family", "seed"}
    assert set(ResetEpisode.Response.get_fields_and_field_types()) == {"success", "message", "instruction"}


# ----------------------------------------------------------------------------------- pub/sub over Fast DDS
def _arm_command() -> ArmCommand:
    msg = ArmCommand()
    msg.header.stamp.sec = 1234
    msg.header.stamp.nanosec = 567_000_000
    msg.header.frame_id = "base_link"
    msg.translation.x, msg.translation.y, msg.translation.z = 0.01, -0.02, 0.05
    msg.rotation.x, msg.rotation.y, msg.rotation.z = 0.1, -0.25, 0.25
    msg.gripper = 0.75
    return msg


def _check_arm_command(got: ArmCommand) -> None:
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (1234, 567_000_000)
    assert got.header.frame_id == "base_link"
    assert (got.translation.x, got.translation.y, got.translation.z) == (0.01, -0.02, 0.05)
    assert (got.rotation.x, got.rotation.y, got.rotation.z) == (0.1, -0.25, 0.25)
    assert got.gripper == 0.75


def _rt1_action() -> RT1Action:
    msg = RT1Action()
    msg.header.stamp.sec = 42
    msg.header.frame_id = "camera"
    msg.tokens = [0, 255, 128, 1, 2, 3, 254, 127, 126, 64, 2]
    msg.arm = [0.05, -0.05, 0.0, 0.25, -0.25, 0.125, 1.0]
    msg.base = [0.5, -0.5, -1.0]
    msg.mode = RT1Action.MODE_HOLD
    msg.enabled = True
    msg.inference_ms = 12.5
    msg.instruction = "pick up the red can — 빨간 캔을 집어"
    return msg


def _check_rt1_action(got: RT1Action) -> None:
    assert got.header.stamp.sec == 42 and got.header.frame_id == "camera"
    assert [int(t) for t in got.tokens] == [0, 255, 128, 1, 2, 3, 254, 127, 126, 64, 2]
    expected_arm = [0.05, -0.05, 0.0, 0.25, -0.25, 0.125, 1.0]
    assert all(math.isclose(a, b, rel_tol=0, abs_tol=1e-7) for a, b in zip(got.arm, expected_arm, strict=True))
    assert [float(b) for b in got.base] == [0.5, -0.5, -1.0]
    assert got.mode == RT1Action.MODE_HOLD
    assert got.enabled is True
    assert got.inference_ms == 12.5
    assert got.instruction == "pick up the red can — 빨간 캔을 집어"


def _episode_status() -> EpisodeStatus:
    msg = EpisodeStatus()
    msg.instruction = "open the drawer"
    msg.task_family = "drawer"
    msg.seed = 4_000_000_000
    msg.step = 17
    msg.elapsed_s = 5.5
    msg.success = True
    msg.done = True
    return msg


def _check_episode_status(got: EpisodeStatus) -> None:
    assert (got.instruction, got.task_family) == ("open the drawer", "drawer")
    assert (got.seed, got.step, got.elapsed_s) == (4_000_000_000, 17, 5.5)
    assert got.success is True and got.done is True


@pytest.mark.parametrize(
    ("msg_type", "build", "check"),
    [
        (ArmCommand, _arm_command, _check_arm_command),
        (RT1Action, _rt1_action, _check_rt1_action),
        (EpisodeStatus, _episode_status, _check_episode_status),
    ],
    ids=["ArmCommand", "RT1Action", "EpisodeStatus"],
)
def test_message_round_trip_between_nodes(make_node, msg_type, build, check):
    assert rclpy.get_rmw_implementation_identifier() == "rmw_fastrtps_cpp"
    topic = unique_topic(msg_type.__name__.lower())

    talker = make_node("rt1_test_talker")
    listener = make_node("rt1_test_listener")
    received: list = []
    arrived = threading.Event()

    def on_message(message) -> None:
        received.append(message)
        arrived.set()

    listener.create_subscription(msg_type, topic, on_message, qos.COMMANDS_AND_STATE)
    publisher = talker.create_publisher(msg_type, topic, qos.COMMANDS_AND_STATE)

    sent = build()
    # Publish until discovery has matched the two endpoints and one message arrived (a message published before
    # the match is lost: volatile).
    for _ in range(round(TIMEOUT_S / 0.2)):
        publisher.publish(sent)
        if arrived.wait(0.2):
            break
    assert arrived.is_set(), f"no {msg_type.__name__} received on {topic} within {TIMEOUT_S} s"
    assert isinstance(received[0], msg_type)
    check(received[0])


# ----------------------------------------------------------------------------------------- service call
def test_reset_episode_service_round_trip(make_node):
    service_name = unique_topic("reset_episode")
    calls: list[tuple[str, int]] = []

    def handle(request, response):
        calls.append((request.task_family, request.seed))
        response.success = True
        response.message = f"episode reset (seed {request.seed})"
        response.instruction = f"{request.task_family or 'random'} task for seed {request.seed}"
        return response

    server = make_node("rt1_test_sim")
    server.create_service(ResetEpisode, service_name, handle)
    client_node = make_node("rt1_test_client")
    client = client_node.create_client(ResetEpisode, service_name)

    assert client.wait_for_service(timeout_sec=TIMEOUT_S), f"service {service_name} not discovered"
    request = ResetEpisode.Request(task_family="pick_place", seed=7)
    future = client.call_async(request)
    assert future_done(future), "no ResetEpisode response"
    response = future.result()
    assert calls == [("pick_place", 7)]
    assert response.success is True
    assert response.message == "episode reset (seed 7)"
    assert response.instruction == "pick_place task for seed 7"
