"""rt1_lifecycle_node over real topics and services: every transition driven through the node's lifecycle services
(what `ros2 lifecycle set` calls), its effect observed on the graph (publishers, subscriptions, services), on the
command topics and on the model's memory."""
from __future__ import annotations

import gc
import signal
import weakref

import pytest

from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import State, Transition, TransitionEvent
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool, Trigger

from ros_harness import MessageStream, NodeProcess, make_image, node_log, wait_for
from rt1_ros.msg import ArmCommand, RT1Action

SERVICE_TIMEOUT_S = 120.0  # hang guard only: activation loads a model, slow on a loaded 2-core CI machine
FORWARD = 0.4  # drive_checkpoint commands full forward speed (0.5 m/s)


def start_lifecycle_node(ros, **parameters):
    from rt1_ros.node.rt1_lifecycle_node import Rt1LifecycleNode

    return ros.start_rt1_node(Rt1LifecycleNode, **parameters)


def call(client, request):
    assert client.wait_for_service(timeout_sec=SERVICE_TIMEOUT_S), f"no service {client.srv_name}"
    future = client.call_async(request)
    assert wait_for(future.done, timeout=SERVICE_TIMEOUT_S), f"{client.srv_name} did not answer"
    return future.result()


class LifecycleClient:
    """The node's lifecycle services and its own ~/enable, ~/reset, called from the peer."""

    def __init__(self, ros) -> None:
        self.ros = ros
        self.name = f"{ros.namespace}/rt1_node"
        self._change = ros.peer.create_client(ChangeState, f"{self.name}/change_state")
        self._get = ros.peer.create_client(GetState, f"{self.name}/get_state")
        self._enable = ros.peer.create_client(SetBool, f"{self.name}/enable")
        self._reset = ros.peer.create_client(Trigger, f"{self.name}/reset")

    def set(self, label: str) -> bool:
        """As `ros2 lifecycle set <node> <label>`: the transition named by its label; True when it succeeded."""
        request = ChangeState.Request()
        request.transition.label = label
        return call(self._change, request).success

    def set_id(self, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return call(self._change, request).success

    def state(self) -> str:
        return call(self._get, GetState.Request()).current_state.label

    def enable(self, on: bool):
        return call(self._enable, SetBool.Request(data=on))

    def reset(self):
        return call(self._reset, Trigger.Request())

    def publishers(self, topic: str) -> int:
        return self.ros.peer.count_publishers(f"{self.ros.namespace}/{topic}")

    def subscribers(self, topic: str) -> int:
        return self.ros.peer.count_subscribers(f"{self.ros.namespace}/{topic}")

    def has_service(self, name: str) -> bool:
        # The services the node itself serves (a graph-wide list would include the peer's clients).
        served = self.ros.peer.get_service_names_and_types_by_node("rt1_node", self.ros.namespace)
        return any(n == f"{self.name}/{name}" for n, _ in served)


def camera(ros) -> MessageStream:
    return MessageStream(ros, Image, "image", lambda i: make_image(stamp_ns=1_000_000_000 + i * 50_000_000, seed=i))


def released(reference: weakref.ref) -> bool:
    gc.collect()
    return reference() is None


def test_configure_creates_publishers_and_services_but_loads_no_model(ros, drive_checkpoint):
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(drive_checkpoint))
    events = ros.collect(TransitionEvent, "rt1_node/transition_event", qos_profile=10)
    lifecycle = LifecycleClient(ros)
    assert lifecycle.state() == "unconfigured"
    assert lifecycle.publishers("cmd_vel") == 0 and not lifecycle.has_service("enable")
    assert not lifecycle.set("activate"), "activate must be refused while unconfigured"

    assert lifecycle.set("configure")
    assert lifecycle.state() == "inactive"
    assert wait_for(lambda: all(lifecycle.publishers(t) == 1 for t in ("cmd_vel", "arm_command", "rt1_action")))
    assert wait_for(lambda: lifecycle.has_service("enable") and lifecycle.has_service("reset"))
    assert lifecycle.subscribers("image") == 0 and lifecycle.subscribers("instruction") == 0
    assert node.loop is None, "configure must not load the model"
    refused = lifecycle.enable(True)
    assert not refused.success and "not active" in refused.message
    assert not lifecycle.reset().success
    # What `ros2 lifecycle echo` shows: configure begins (-> configuring), then succeeds (-> inactive).
    assert wait_for(lambda: [(e.start_state.id, e.goal_state.id) for e in events] == [
        (State.PRIMARY_STATE_UNCONFIGURED, State.TRANSITION_STATE_CONFIGURING),
        (State.TRANSITION_STATE_CONFIGURING, State.PRIMARY_STATE_INACTIVE)]), events
    ros.remove(node)


def test_activate_drives_then_deactivate_sends_zero_stops_and_releases_the_model(ros, drive_checkpoint):
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(drive_checkpoint), arm_output="both")
    lifecycle = LifecycleClient(ros)
    twists = ros.collect(Twist, "cmd_vel")
    arm = ros.collect(ArmCommand, "arm_command")
    actions = ros.collect(RT1Action, "rt1_action")
    assert lifecycle.set("configure")
    frames = camera(ros)
    ros.send_instruction("move near the red cube")

    assert lifecycle.set("activate")
    assert lifecycle.state() == "active"
    assert wait_for(lambda: lifecycle.subscribers("image") == 1 and lifecycle.subscribers("instruction") == 1)
    assert wait_for(lambda: any(t.linear.x > FORWARD for t in twists)), "no forward command while active"
    model = weakref.ref(node.loop.controller.policy)

    assert lifecycle.set("deactivate")
    assert lifecycle.state() == "inactive"
    assert wait_for(lambda: twists[-1].linear.x == 0.0 and twists[-1].angular.z == 0.0), "no zero command"
    assert wait_for(lambda: arm[-1].translation.z == 0.0)
    assert node.loop is None and released(model), "deactivate must release the model"
    assert wait_for(lambda: lifecycle.subscribers("image") == 0 and lifecycle.subscribers("instruction") == 0)
    assert lifecycle.publishers("cmd_vel") == 1, "publishers stay until cleanup"
    # Frames keep coming; the node, unsubscribed and without a model, sends nothing more.
    counts = len(twists), len(arm), len(actions)
    sent = len(frames.sent)
    assert wait_for(lambda: len(frames.sent) >= sent + 10)
    frames.stop()
    assert (len(twists), len(arm), len(actions)) == counts
    assert not lifecycle.enable(True).success
    ros.remove(node)


def test_each_activation_starts_in_dry_run_and_enable_gates_motion(ros, drive_checkpoint):
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(drive_checkpoint), start_enabled=False)
    lifecycle = LifecycleClient(ros)
    twists = ros.collect(Twist, "cmd_vel")
    actions = ros.collect(RT1Action, "rt1_action")
    frames = camera(ros)
    ros.send_instruction("move near the red cube")
    assert lifecycle.set("configure") and lifecycle.set("activate")
    assert wait_for(lambda: len([a for a in actions if a.mode == RT1Action.MODE_BASE]) >= 3), "dry run: actions"
    assert not any(a.enabled for a in actions) and not any(t.linear.x != 0 for t in twists), "dry run: no motion"

    assert lifecycle.enable(True).success
    assert wait_for(lambda: any(t.linear.x > FORWARD for t in twists)), "enabled: motion"
    assert lifecycle.set("deactivate")
    assert wait_for(lambda: twists[-1].linear.x == 0.0)

    # Reactivated: a fresh policy, in dry run again (start_enabled false), though enabled before deactivate.
    before = len(actions)
    assert lifecycle.set("activate")
    assert wait_for(lambda: len([a for a in actions[before:] if a.mode == RT1Action.MODE_BASE]) >= 3)
    moving = len([t for t in twists if t.linear.x != 0])
    assert not any(a.enabled for a in actions[before:])
    assert lifecycle.enable(True).success
    assert wait_for(lambda: len([t for t in twists if t.linear.x > FORWARD]) > moving)
    disabled = lifecycle.enable(False)
    assert disabled.success and "dry run" in disabled.message
    assert wait_for(lambda: twists[-1].linear.x == 0.0)
    frames.stop()
    ros.remove(node)


def test_cleanup_removes_publishers_and_services_and_configure_works_again(ros, drive_checkpoint):
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(drive_checkpoint))
    lifecycle = LifecycleClient(ros)
    assert lifecycle.set_id(Transition.TRANSITION_CONFIGURE)
    assert wait_for(lambda: lifecycle.publishers("cmd_vel") == 1 and lifecycle.has_service("enable"))

    assert lifecycle.set_id(Transition.TRANSITION_CLEANUP)
    assert lifecycle.state() == "unconfigured"
    assert wait_for(lambda: all(lifecycle.publishers(t) == 0 for t in ("cmd_vel", "arm_command", "rt1_action")))
    assert wait_for(lambda: not lifecycle.has_service("enable") and not lifecycle.has_service("reset"))
    assert node.outputs is None

    assert lifecycle.set_id(Transition.TRANSITION_CONFIGURE), "a cleaned-up node configures again"
    assert wait_for(lambda: lifecycle.publishers("cmd_vel") == 1 and lifecycle.has_service("enable"))
    ros.remove(node)


@pytest.mark.parametrize("from_state", ["unconfigured", "inactive", "active"])
def test_shutdown_from_each_state_finalizes_and_an_active_node_sends_zero(ros, drive_checkpoint, from_state):
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(drive_checkpoint))
    lifecycle = LifecycleClient(ros)
    twists = ros.collect(Twist, "cmd_vel")
    frames = camera(ros)
    model = None
    if from_state != "unconfigured":
        assert lifecycle.set("configure")
    if from_state == "active":
        ros.send_instruction("move near the red cube")
        assert lifecycle.set("activate")
        assert wait_for(lambda: any(t.linear.x > FORWARD for t in twists))
        model = weakref.ref(node.loop.controller.policy)
    assert lifecycle.state() == from_state

    assert lifecycle.set("shutdown")
    assert lifecycle.state() == "finalized"
    frames.stop()
    if model is not None:
        assert wait_for(lambda: twists[-1].linear.x == 0.0), "shutdown while active must send zero motion"
        assert released(model)
    assert wait_for(lambda: lifecycle.publishers("cmd_vel") == 0 and lifecycle.subscribers("image") == 0)
    assert not lifecycle.set("configure"), "a finalized node takes no transition"
    ros.remove(node)


def test_activation_with_a_model_that_does_not_load_fails_and_stays_inactive(ros, tmp_path):
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(tmp_path / "no_such_checkpoint"))
    log = node_log(ros)
    lifecycle = LifecycleClient(ros)
    assert lifecycle.set("configure")
    assert not lifecycle.set("activate")
    assert lifecycle.state() == "inactive" and node.loop is None
    assert wait_for(lambda: any("cannot activate" in m.msg and "no_such_checkpoint" in m.msg for m in log))
    assert lifecycle.subscribers("image") == 0
    assert lifecycle.set("cleanup") and lifecycle.state() == "unconfigured"
    ros.remove(node)


def set_parameter(ros, name: str, value: str):
    """Through the node's own parameter service, as `ros2 param set` does."""
    from rcl_interfaces.msg import Parameter as ParameterMessage, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = ros.peer.create_client(SetParameters, f"{ros.namespace}/rt1_node/set_parameters")
    value_message = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return call(client, SetParameters.Request(parameters=[ParameterMessage(name=name, value=value_message)])).results[0]


def test_parameters_set_before_configure_are_taken_and_runtime_changes_apply_while_active(ros, drive_checkpoint):
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(drive_checkpoint))
    lifecycle = LifecycleClient(ros)
    actions = ros.collect(RT1Action, "rt1_action")
    assert set_parameter(ros, "arm_frame_id", "tool0").successful
    assert not set_parameter(ros, "image_transport", "jpeg").successful, "checks apply before configure too"
    assert lifecycle.set("configure") and lifecycle.set("activate")
    frames = camera(ros)
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: any(a.header.frame_id == "tool0" for a in actions)), "configure must take the value set"
    assert set_parameter(ros, "arm_frame_id", "tool1").successful
    assert wait_for(lambda: actions[-1].header.frame_id == "tool1"), "a runtime change applies while active"
    frames.stop()
    ros.remove(node)


def test_a_transition_that_raises_is_undone_by_error_processing(ros, drive_checkpoint, monkeypatch):
    """An unexpected exception in activate, after the loop has subscribed and started its threads: the error
    transition stops and releases everything and the node is unconfigured, ready to configure again."""
    from rt1_ros.node.control_loop import ControlLoop

    started = []
    original_start = ControlLoop.start

    def start_then_fail(loop):
        original_start(loop)
        started.append((weakref.ref(loop.controller.policy), list(loop._threads)))
        raise RuntimeError("injected failure after start")

    monkeypatch.setattr(ControlLoop, "start", start_then_fail)
    ros.new_namespace()
    node = start_lifecycle_node(ros, checkpoint=str(drive_checkpoint))
    log = node_log(ros)
    lifecycle = LifecycleClient(ros)
    assert lifecycle.set("configure")
    assert not lifecycle.set("activate")
    assert lifecycle.state() == "unconfigured"
    (model, threads), = started
    assert threads and not any(thread.is_alive() for thread in threads), "error processing must stop the threads"
    assert released(model) and node.loop is None and node.outputs is None
    assert wait_for(lambda: lifecycle.subscribers("image") == 0 and lifecycle.publishers("cmd_vel") == 0)
    assert wait_for(lambda: any("on_activate raised" in m.msg and "injected failure" in m.msg for m in log))
    monkeypatch.undo()
    assert lifecycle.set("configure"), "an unconfigured node configures again after an error"
    ros.remove(node)


def test_lifecycle_process_sends_zero_and_exits_cleanly_on_sigint(ros, drive_checkpoint):
    """`rt1_lifecycle_node` as its own process (the console entry point's main): driven to active over the
    lifecycle services, moving, then SIGINT: a final zero command and exit code 0."""
    namespace = ros.new_namespace()
    lifecycle = LifecycleClient(ros)
    twists = ros.collect(Twist, "cmd_vel")
    process = NodeProcess(namespace, dict(model_size="tiny", device="cpu", control_rate_hz=10.0, image_timeout_s=5.0,
                                          start_enabled=True, checkpoint=str(drive_checkpoint)),
                          python_prefix=["-m", "rt1_ros.node.rt1_lifecycle_node"])
    try:
        assert lifecycle.set("configure") and lifecycle.set("activate"), process.output()
        frames = camera(ros)
        ros.send_instruction("move near the red cube")
        assert wait_for(lambda: any(t.linear.x > FORWARD for t in twists), timeout=60), process.output()
        process.process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, process.output()
        frames.stop()
        assert wait_for(lambda: twists[-1].linear.x == 0.0), "no final zero command"
        assert "shut down (finalized)" in process.output()
    finally:
        process.stop()
