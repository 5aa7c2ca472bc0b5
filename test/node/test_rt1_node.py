"""rt1_node over real topics: images and instruction in, Twist / arm command / action out, safety behaviour."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from geometry_msgs.msg import Twist
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool, Trigger

from ros_harness import SimTimeRig, biased_checkpoint, make_image, wait_for
from rt1_ros.msg import ArmCommand, RT1Action
from rt1_ros.node.ros_graph import stamp_ns

BIN_MAX, BIN_MIN = 255, 0


class CameraStream:
    """Publishes images at a fixed rate from the peer node until stopped."""

    def __init__(self, ros, encoding="rgb8", padding=0, period=0.05):
        self.publisher = ros.peer.create_publisher(Image, "image", 10)
        self.encoding, self.padding, self.sent = encoding, padding, []
        self.timer = ros.peer.create_timer(period, self._tick)

    def _tick(self):
        stamp = 1_000_000_000 + len(self.sent) * 50_000_000
        self.publisher.publish(make_image(self.encoding, padding=self.padding, stamp_ns=stamp, seed=len(self.sent)))
        self.sent.append(stamp)

    def stop(self):
        self.timer.cancel()


@pytest.fixture
def base_forward_checkpoint(tmp_path):
    return biased_checkpoint(tmp_path / "base_forward", mode=1, bins={7: BIN_MAX, 9: BIN_MIN})


def test_images_and_instruction_drive_the_base(ros, base_forward_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(base_forward_checkpoint))
    twists = ros.collect(Twist, "cmd_vel")
    actions = ros.collect(RT1Action, "rt1_action")
    camera = CameraStream(ros)
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: any(t.linear.x > 0.4 for t in twists)), "no forward base command received"
    camera.stop()
    moving = [a for a in actions if a.mode == RT1Action.MODE_BASE]
    assert moving, "no base-mode action published"
    action = moving[-1]
    assert stamp_ns(action.header.stamp) in camera.sent, "action must carry the stamp of the image it used"
    assert list(action.tokens)[7] == BIN_MAX and action.instruction == "move near the red cube"
    assert action.base[0] == pytest.approx(0.5, abs=1e-4) and action.base[2] == pytest.approx(-1.0, abs=1e-4)
    assert action.enabled and action.inference_ms > 0
    turning = [t for t in twists if t.linear.x > 0.4]
    assert turning[-1].angular.z == pytest.approx(-1.0, abs=1e-4)
    assert all(abs(t.linear.z) == 0 for t in twists)
    ros.remove(node)


@pytest.mark.parametrize("encoding,padding", [("rgb8", 0), ("rgb8", 7), ("bgr8", 3), ("rgba8", 0), ("bgra8", 4),
                                              ("mono8", 5)])
def test_each_encoding_is_accepted(ros, base_forward_checkpoint, encoding, padding):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(base_forward_checkpoint))
    actions = ros.collect(RT1Action, "rt1_action")
    camera = CameraStream(ros, encoding=encoding, padding=padding)
    ros.send_instruction("push the blue cube left")
    assert wait_for(lambda: any(stamp_ns(a.header.stamp) in camera.sent for a in actions))
    camera.stop()
    assert node.frames_invalid == 0
    ros.remove(node)


def test_unknown_encoding_is_dropped_and_the_robot_holds(ros, base_forward_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(base_forward_checkpoint))
    twists = ros.collect(Twist, "cmd_vel")
    actions = ros.collect(RT1Action, "rt1_action")
    camera = CameraStream(ros, encoding="yuv_mystery")
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: node.frames_invalid >= 3)
    assert wait_for(lambda: len(actions) >= 3)
    camera.stop()
    assert all(a.mode == RT1Action.MODE_HOLD for a in actions)
    assert twists and all(t.linear.x == 0 and t.angular.z == 0 for t in twists)
    ros.remove(node)


def test_watchdog_stops_the_robot_when_images_stop_and_resumes(ros, base_forward_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(base_forward_checkpoint), image_timeout_s=0.4)
    twists = ros.collect(Twist, "cmd_vel")
    camera = CameraStream(ros)
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: twists and twists[-1].linear.x > 0.4)
    camera.stop()
    stopped_at = time.monotonic()
    assert wait_for(lambda: twists[-1].linear.x == 0.0, timeout=3.0)
    # image_timeout_s + one control period (0.1 s), plus scheduling slack for a loaded CI machine
    assert time.monotonic() - stopped_at < 0.4 + 0.1 + 1.0
    camera = CameraStream(ros)
    assert wait_for(lambda: twists[-1].linear.x > 0.4), "motion must resume when images return"
    camera.stop()
    ros.remove(node)


def test_enable_service_gates_motion_and_dry_run_still_publishes_actions(ros, base_forward_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(base_forward_checkpoint), start_enabled=False)
    twists = ros.collect(Twist, "cmd_vel")
    actions = ros.collect(RT1Action, "rt1_action")
    camera = CameraStream(ros)
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: len([a for a in actions if a.mode == RT1Action.MODE_BASE]) >= 2)
    assert not any(t.linear.x > 0 for t in twists), "a dry-run node must send no motion"
    assert not actions[-1].enabled

    client = ros.peer.create_client(SetBool, f"{ros.namespace}/rt1_node/enable")
    assert client.wait_for_service(timeout_sec=5)
    future = client.call_async(SetBool.Request(data=True))
    assert wait_for(future.done) and future.result().success
    assert wait_for(lambda: any(t.linear.x > 0.4 for t in twists))
    future = client.call_async(SetBool.Request(data=False))
    assert wait_for(future.done)
    count = len(twists)
    assert wait_for(lambda: len(twists) > count - 1 and twists[-1].linear.x == 0.0)
    time.sleep(0.5)
    assert all(t.linear.x == 0.0 for t in twists[count:]), "no motion after disabling"
    camera.stop()
    ros.remove(node)


def test_new_instruction_resets_history_and_reset_service(ros, base_forward_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(base_forward_checkpoint))
    actions = ros.collect(RT1Action, "rt1_action")
    camera = CameraStream(ros)
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: len(node.controller.policy.history) >= 4)
    ros.send_instruction("move near the green cylinder")
    assert wait_for(lambda: actions and actions[-1].instruction == "move near the green cylinder")
    assert len(node.controller.policy.history) < 4
    assert wait_for(lambda: len(node.controller.policy.history) >= 4)
    client = ros.peer.create_client(Trigger, f"{ros.namespace}/rt1_node/reset")
    assert client.wait_for_service(timeout_sec=5)
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done) and future.result().success
    # The worker applies the reset before its next step (at once when idle, after the step in flight otherwise).
    assert wait_for(lambda: len(node.controller.policy.history) < 4, timeout=5.0)
    camera.stop()
    ros.remove(node)


def test_a_frame_that_arrived_before_an_instruction_is_not_acted_on_under_it(ros, base_forward_checkpoint):
    """The frame may show a world the instruction's episode replaced (a simulator reset between them). Under sim
    time with the timer trigger the test decides when each step happens: a frame, then a new instruction, then the
    step: a hold; the next frame drives under the new instruction."""
    rig = SimTimeRig(ros, base_forward_checkpoint, timeout=30.0, control_trigger="timer", control_rate_hz=10.0,
                     image_timeout_s=5.0)
    node = rig.node

    def send_frame(seconds: float) -> None:
        received = node.loop.frames_received
        rig.send_frame(seconds)
        assert wait_for(lambda: node.loop.frames_received > received, timeout=30.0)

    def instruct(text: str) -> None:
        ros.send_instruction(text)
        assert wait_for(lambda: node.controller.instruction == text, timeout=30.0)

    def answer_at(tick: float, frame: float) -> RT1Action:
        rig.set_clock(tick)  # past a 10 Hz boundary: the control timer steps once
        return rig.answer_to(frame)

    try:
        rig.set_clock(1.0)
        assert wait_for(lambda: rig.camera.get_subscription_count() > 0, timeout=30.0)
        instruct("drive to the red cube")
        send_frame(1.02)
        acted = answer_at(1.15, 1.02)
        assert acted.mode == RT1Action.MODE_BASE and acted.instruction == "drive to the red cube"

        send_frame(1.22)
        instruct("drive to the blue cube")
        held = answer_at(1.25, 1.22)
        assert held.mode == RT1Action.MODE_HOLD and held.inference_ms == 0.0, "acted on a frame from before the task"

        send_frame(1.32)
        acted = answer_at(1.35, 1.32)
        assert acted.mode == RT1Action.MODE_BASE and acted.instruction == "drive to the blue cube"
        assert len(node.controller.policy.history) == 1  # the frame from before the instruction is not in it
    finally:
        rig.close()


def test_terminate_mode_stops_everything(ros, tmp_path):
    checkpoint = biased_checkpoint(tmp_path / "terminate", mode=2, bins={0: BIN_MAX, 7: BIN_MAX})
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(checkpoint))
    twists = ros.collect(Twist, "cmd_vel")
    arms = ros.collect(ArmCommand, "arm_command")
    actions = ros.collect(RT1Action, "rt1_action")
    camera = CameraStream(ros)
    ros.send_instruction("pick up the red cube")
    assert wait_for(lambda: len([a for a in actions if a.mode == RT1Action.MODE_TERMINATE]) >= 3)
    camera.stop()
    assert all(t.linear.x == 0.0 for t in twists)
    assert all(a.translation.x == 0.0 for a in arms)
    assert node.controller.stats.inferences == 1, "no inference after the policy terminated"
    ros.remove(node)


def test_arm_mode_publishes_arm_deltas_stamped_with_the_image(ros, tmp_path):
    checkpoint = biased_checkpoint(tmp_path / "arm_up", mode=0, bins={2: BIN_MAX, 6: BIN_MAX, 7: BIN_MAX})
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(checkpoint), arm_frame_id="arm_base")
    twists = ros.collect(Twist, "cmd_vel")
    arms = ros.collect(ArmCommand, "arm_command")
    camera = CameraStream(ros)
    ros.send_instruction("pick up the red cube")
    assert wait_for(lambda: any(a.translation.z > 0.04 for a in arms))
    camera.stop()
    command = [a for a in arms if a.translation.z > 0.04][-1]
    assert command.header.frame_id == "arm_base" and command.gripper == 1.0
    assert stamp_ns(command.header.stamp) in camera.sent
    assert all(t.linear.x == 0.0 for t in twists), "arm mode holds the base"
    ros.remove(node)


def test_out_of_range_parameter_is_rejected_and_old_value_kept(ros):
    ros.new_namespace()
    node = ros.start_rt1_node()
    result = node.set_parameters([Parameter("ema_alpha", value=5.0)])[0]
    assert not result.successful and result.reason
    assert node.get_parameter("ema_alpha").value == 1.0
    result = node.set_parameters([Parameter("gripper_open_threshold", value=0.9)])[0]  # above close threshold
    assert not result.successful and "gripper" in result.reason
    result = node.set_parameters([Parameter("ema_alpha", value=0.3)])[0]
    assert result.successful and node.controller.config.ema_alpha == 0.3
    ros.remove(node)


def test_bad_checkpoint_fails_fast_with_a_clear_message(tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    process = subprocess.run(
        [sys.executable, "-m", "rt1_ros.node.rt1_node", "--ros-args", "-p", f"checkpoint:={missing}",
         "-p", "device:=cpu"], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert process.returncode == 2
    assert str(missing) in process.stderr and "not found" in process.stderr
