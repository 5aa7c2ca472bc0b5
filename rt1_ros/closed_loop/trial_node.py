"""The ROS side of rt1-trial: the `rt1_trial` node with the operator's services, the latched state and instruction
topics, the rt1_action subscription that counts an episode's steps, and the clients of rt1_node's enable, reset and
parameters."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from rcl_interfaces.srv import GetParameters
from rclpy.duration import Duration
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from rt1_ros.closed_loop.trial_operator import OperatorEvent, OperatorInputs
from rt1_ros.closed_loop.trial_session import TrialError
from rt1_ros.msg import RT1Action
from rt1_ros.node import qos
from rt1_ros.node.ros_graph import call_service

GRAPH_RECHECK_S = 0.1


@dataclass
class RunningEpisode:
    """What the rt1_action callback counts for the episode that is running."""

    token: int
    instruction: str
    steps: int = 0
    inference_ms: list[float] = field(default_factory=list)


class TrialNode:
    """The ROS side: the `rt1_trial` node (services, state, instruction publisher, rt1_action subscription, clients
    of rt1_node) spinning in ``graph``. Calls from the run's thread block on futures, never on the executor."""

    def __init__(self, graph, operator: OperatorInputs, policy_node: str, namespace: str | None,
                 service_timeout_s: float, on_stop, use_sim_time: bool = False) -> None:
        self.operator = operator
        self.service_timeout_s = service_timeout_s
        self._on_stop = on_stop
        kwargs = {"namespace": namespace} if namespace is not None else {}
        if use_sim_time:
            kwargs["parameter_overrides"] = [Parameter("use_sim_time", value=True)]
        node = Node("rt1_trial", context=graph.context, **kwargs)
        self.node = node
        self.policy_node = node.resolve_topic_name(policy_node)  # its fully qualified name
        self._condition = threading.Condition()
        self._actions: list[tuple[str, bool, int]] = []  # (instruction, enabled, mode) of every rt1_action received
        self._matched = threading.Event()
        self._clock_tick = threading.Event()
        self.running: RunningEpisode | None = None  # set by the run while an episode runs

        self.instruction_publisher = node.create_publisher(
            String, "instruction", qos.LATCHED,
            event_callbacks=PublisherEventCallbacks(matched=lambda _: self._matched.set()))
        self.state_publisher = node.create_publisher(String, "~/state", qos.LATCHED)
        node.create_subscription(RT1Action, "rt1_action", self._on_action, qos.RECORDING)
        node.create_subscription(Clock, "/clock", lambda _: self._clock_tick.set(), qos.COMMANDS_AND_STATE)
        self.enable_client = node.create_client(SetBool, f"{self.policy_node}/enable")
        self.reset_client = node.create_client(Trigger, f"{self.policy_node}/reset")
        self.parameters_client = node.create_client(GetParameters, f"{self.policy_node}/get_parameters")
        node.create_service(Trigger, "~/scene_ready", self._trigger("scene_ready"))
        node.create_service(Trigger, "~/skip", self._trigger("skip"))
        node.create_service(Trigger, "~/stop", self._on_stop_service)
        node.create_service(SetBool, "~/verdict", self._on_verdict)
        graph.add(node)

    # -- services ------------------------------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _trigger(self, kind: str):
        def handle(request, response):
            response.success, response.message = self.operator.offer(OperatorEvent(kind, self.now_ns()))
            response.message = response.message or f"{kind}: ok"
            return response
        return handle

    def _on_stop_service(self, request, response):
        response.success, response.message = self._on_stop("service")
        return response

    def _on_verdict(self, request, response):
        kind = "success" if request.data else "failure"
        response.success, response.message = self.operator.offer(OperatorEvent(kind, self.now_ns()))
        response.message = response.message or f"verdict: {kind}"
        return response

    def _on_action(self, message) -> None:
        with self._condition:
            self._actions.append((message.instruction, bool(message.enabled), int(message.mode)))
            self._condition.notify_all()
        running = self.running
        if running is None or not message.enabled:
            return
        if running.instruction != message.instruction or self.operator.token != running.token:
            return  # computed under the previous trial's instruction (it and the images travel on separate topics)
        running.steps += 1
        if message.inference_ms > 0:
            running.inference_ms.append(round(float(message.inference_ms), 2))
        if message.mode == RT1Action.MODE_TERMINATE:
            self.operator.offer(OperatorEvent("terminate", self.now_ns()), token=running.token)

    # -- rt1_node ------------------------------------------------------------------------------------------------
    def call(self, client, request):
        """The response, or TrialError after service_timeout_s (a dead or unreachable rt1_node)."""
        response = call_service(client, request, self.service_timeout_s)
        if response is None:
            raise TrialError(f"{client.srv_name} did not answer within {self.service_timeout_s:g} s")
        return response

    def set_enabled(self, enabled: bool) -> None:
        response = self.call(self.enable_client, SetBool.Request(data=enabled))
        if not response.success:
            raise TrialError(f"{self.enable_client.srv_name} refused {enabled}: {response.message}")

    def disable_now(self) -> None:
        """`~/enable false` without waiting for the answer: safe from an executor callback."""
        self.enable_client.call_async(SetBool.Request(data=False))

    def reset_policy(self) -> None:
        response = self.call(self.reset_client, Trigger.Request())
        if not response.success:
            raise TrialError(f"{self.reset_client.srv_name} failed: {response.message}")

    def policy_parameters(self, names: tuple[str, ...]) -> dict:
        response = self.call(self.parameters_client, GetParameters.Request(names=list(names)))
        return {name: parameter_value_to_python(value) for name, value in zip(names, response.values)}

    def wait_for_services(self) -> None:
        for client in (self.enable_client, self.reset_client, self.parameters_client):
            if not client.wait_for_service(timeout_sec=self.service_timeout_s):
                raise TrialError(f"no {client.srv_name}: is rt1_node running (ros2 launch rt1_ros rt1.launch.py), "
                                 "and under this namespace (--node, --ros-args -r __ns:=...)?")

    def wait_until_connected(self) -> None:
        """Until rt1_node subscribes our instruction topic and, under use_sim_time, a sim clock has arrived."""
        topic = self.instruction_publisher.topic_name
        deadline = time.monotonic() + self.service_timeout_s
        # Not before rt1_node's own subscription has matched: one that matched later would take the (latched)
        # instruction in the middle of the episode and restart it. Woken by each new match of the publisher, and
        # every GRAPH_RECHECK_S, since the graph cache that names the reader's node may lag the match.
        while True:
            self._matched.clear()
            if any(f"{info.node_namespace.rstrip('/')}/{info.node_name}" == self.policy_node
                   for info in self.node.get_subscriptions_info_by_topic(topic)):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TrialError(f"{self.policy_node} does not subscribe {topic}: remap its instruction topic or "
                                 "this node's (--ros-args -r instruction:=...)")
            self._matched.wait(min(remaining, GRAPH_RECHECK_S))
        if self.node.get_parameter("use_sim_time").value:
            while self.now_ns() == 0:
                self._clock_tick.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._clock_tick.wait(remaining):
                    raise TrialError("use_sim_time is set but no /clock arrives")

    def action_count(self) -> int:
        with self._condition:
            return len(self._actions)

    def wait_for_action(self, after: int, predicate, timeout_s: float) -> bool:
        """Until an rt1_action numbered ``after`` or later (in order of arrival) satisfies ``predicate(instruction,
        enabled, mode)``."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while not any(predicate(*action) for action in self._actions[after:]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def publish_instruction(self, text: str) -> None:
        self.instruction_publisher.publish(String(data=text))
        # Acknowledged by every matched reader (rt1_node's among them) before the reset and the enable are sent, so
        # rt1_node's executor takes the instruction before it can take the enable. A reader of a process that died
        # stays matched until its lease runs out and never acknowledges: then only the rt1_action check that
        # follows vouches for the instruction.
        if not self.instruction_publisher.wait_for_all_acked(Duration(seconds=self.service_timeout_s)):
            self.node.get_logger().warning(f"the instruction was not acknowledged by every subscriber within "
                                           f"{self.service_timeout_s:g} s (a subscriber that has gone?)")

    def publish_state(self, state: dict) -> None:
        self.state_publisher.publish(String(data=json.dumps(state)))
