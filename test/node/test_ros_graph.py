"""The in-process graph every in-process user builds on (demo, evaluation, bench, tests) and its stamp conversion."""
from __future__ import annotations

import threading
import uuid

import pytest

rclpy = pytest.importorskip("rclpy")

from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from rt1_ros.node import qos  # noqa: E402
from rt1_ros.node.ros_graph import NANOSECONDS, InProcessGraph, call_service, stamp_ns, to_stamp  # noqa: E402

pytestmark = pytest.mark.ros
TIMEOUT_S = 30.0


@pytest.mark.parametrize("nanoseconds", [0, 1, NANOSECONDS - 1, NANOSECONDS, 1_700_000_000_123_456_789])
def test_stamps_convert_exactly_both_ways(nanoseconds):
    stamp = to_stamp(nanoseconds)
    assert 0 <= stamp.nanosec < NANOSECONDS
    assert stamp_ns(stamp) == nanoseconds


def test_a_raising_callback_is_reported_and_its_node_keeps_spinning():
    topic = f"/rt1_ros_graph_test_{uuid.uuid4().hex[:8]}"
    received: list[str] = []
    first, second = threading.Event(), threading.Event()

    def on_message(message) -> None:
        received.append(message.data)
        if len(received) == 1:
            first.set()
            raise RuntimeError("first message")
        second.set()

    with InProcessGraph() as graph:
        listener = graph.add(rclpy.create_node("listener", context=graph.context))
        talker = graph.add(rclpy.create_node("talker", context=graph.context))
        # Latched: the first message reaches the subscription even if it is matched after the publish.
        listener.create_subscription(String, topic, on_message, qos.LATCHED)
        publisher = talker.create_publisher(String, topic, qos.LATCHED)
        publisher.publish(String(data="one"))
        assert first.wait(TIMEOUT_S), "the first message never arrived"
        publisher.publish(String(data="two"))
        assert second.wait(TIMEOUT_S), f"the node stopped spinning after its callback raised (got {received})"
        assert received == ["one", "two"]
        assert [str(e) for e in graph.errors] == ["first message"]


def test_a_service_call_returns_the_response_or_none_when_no_answer_comes():
    """`call_service` from a thread other than the client's spinner: the server's answer, which depends on the
    request; None when no server answers."""
    name = f"/rt1_ros_graph_test_{uuid.uuid4().hex[:8]}"

    def answer(request, response):
        response.success = not request.data
        response.message = f"asked {request.data}"
        return response

    with InProcessGraph() as graph:
        server = graph.add(rclpy.create_node("server", context=graph.context))
        server.create_service(SetBool, name, answer)
        caller = graph.add(rclpy.create_node("caller", context=graph.context))
        client = caller.create_client(SetBool, name)
        unserved = caller.create_client(SetBool, name + "_nobody")
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        for data in (True, False):
            response = call_service(client, SetBool.Request(data=data), TIMEOUT_S)
            assert (response.success, response.message) == (not data, f"asked {data}")
        # No server exists, so no answer can come whatever the wait: a short one proves the same.
        assert call_service(unserved, SetBool.Request(data=True), 0.2) is None
        assert not graph.errors
