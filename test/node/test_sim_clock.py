"""rt1_node on a simulator's clock, each in its own process as with Gazebo and ros_gz_bridge: /clock at 100 Hz
(reliable) and camera frames stamped with it (test/sim_clock_process.py), `use_sim_time`, velocities republished at
30 Hz between 3 Hz steps. A world reset sends the clock back (it jumps to 0 and goes on); a paused simulator stops it.

Every wait is for a message (a twist stamped with the node's clock, a log line), never for a length of wall time: the
clock process runs at real time, so how far sim time has gone is read off the stamps the node puts on its commands.
Which frames around a jump move the robot is checked in process, with the clock and the frames sent one by one.
"""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from geometry_msgs.msg import TwistStamped

from ros_harness import NodeProcess, SimTimeRig, node_log, wait_for
from rt1_ros.msg import RT1Action
from rt1_ros.node.ros_graph import NANOSECONDS, stamp_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CLOCK_PROCESS = Path(__file__).resolve().parents[1] / "sim_clock_process.py"
START_TIMEOUT_S = 180.0  # imports and model load of two processes on two shared cores
EVENT_TIMEOUT_S = 60.0
BEFORE_RESET_S = 10.0  # the clock process starts here; a reset sends it back to 0
DRIVING = 0.4  # m/s: the drive checkpoint commands 0.5 forward


class ClockProcess:
    """test/sim_clock_process.py in its own process, publishing on the test's namespace."""

    def __init__(self, namespace: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CLOCK_PROCESS), "--clock-topic", f"{namespace}/clock",
             "--image-topic", f"{namespace}/image", "--start-s", str(BEFORE_RESET_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._forward, daemon=True).start()
        self._read(START_TIMEOUT_S)  # {"ready": ...}

    def _forward(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")  # the process ended

    def _read(self, timeout: float) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        assert line, f"the clock process did not answer (exit code {self.process.poll()})"
        return json.loads(line)

    def command(self, *commands: str) -> list[dict]:
        """Send ``commands`` in one write (applied back to back, between two clock ticks at most); their answers."""
        self.process.stdin.write("".join(f"{c}\n" for c in commands))
        self.process.stdin.flush()
        return [self._read(EVENT_TIMEOUT_S) for _ in commands]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def seconds(message: TwistStamped) -> float:
    return stamp_ns(message.header.stamp) / NANOSECONDS


@pytest.fixture
def robot(ros, drive_checkpoint):
    """The node process on the clock process's clock, driving forward; yields (twists, log, clock, node)."""
    ros.new_namespace()
    twists: list[TwistStamped] = []
    ros.peer.create_subscription(TwistStamped, "cmd_vel", twists.append, 100)
    log = node_log(ros)
    ros.send_instruction("move near the red cube")
    parameters = dict(checkpoint=str(drive_checkpoint), device="cpu", use_sim_time=True, control_rate_hz=3.0,
                      command_rate_hz=30.0, image_timeout_s=1.0, start_enabled=True, ema_alpha=1.0,
                      base_output="twist_stamped")
    node = NodeProcess(ros.namespace, parameters, remappings={"/clock": f"{ros.namespace}/clock"})
    clock = None
    try:
        clock = ClockProcess(ros.namespace)
        clock.command("frames on")
        assert wait_for(lambda: any(t.twist.linear.x > DRIVING for t in twists) or node.process.poll() is not None,
                        timeout=START_TIMEOUT_S), f"never drove on sim time\n{node.output()[-3000:]}"
        assert node.process.poll() is None, node.output()[-3000:]
        yield twists, log, clock, node
    finally:
        if clock is not None:
            clock.stop()
        node.stop()


def log_lines(log: list, text: str) -> list[str]:
    return [m.msg for m in log if text in m.msg]


def test_a_world_reset_holds_until_a_frame_after_it_then_drives_again(robot):
    """The clock jumps back from ~10 s to 0 and runs on, with no camera frame for the first sim second after it:
    every command the node sends on the new timeline is zero (before: the last pre-reset command, republished at
    30 Hz, and the step kept it), the jump is logged once, and the robot drives again on frames after the jump."""
    twists, log, clock, node = robot
    _, jumped = clock.command("frames off", "jump 0")
    assert jumped["sim_s"] < 1.0

    def after_reset() -> list[TwistStamped]:
        return [t for t in list(twists) if seconds(t) < BEFORE_RESET_S / 2]

    # One sim second on the new timeline: three control periods, some thirty republished commands.
    assert wait_for(lambda: any(seconds(t) >= 1.0 for t in after_reset()), timeout=EVENT_TIMEOUT_S), \
        f"no command stamped a second after the reset\n{node.output()[-3000:]}"
    held = after_reset()
    moving = [t for t in held if t.twist.linear.x != 0.0 or t.twist.angular.z != 0.0]
    print(f"\nafter the reset, before any new frame: {len(moving)} of {len(held)} commands moving "
          f"(sim time {seconds(held[0]):.2f} .. {seconds(held[-1]):.2f} s)")
    assert not moving, f"motion after the clock went back, first at {seconds(moving[0]):.3f} s"
    assert wait_for(lambda: log_lines(log, "jumped back by"), timeout=EVENT_TIMEOUT_S), "the jump was not logged"

    clock.command("frames on")
    assert wait_for(lambda: any(t.twist.linear.x > DRIVING for t in after_reset()), timeout=EVENT_TIMEOUT_S), \
        f"no motion on the frames after the reset\n{node.output()[-3000:]}"
    assert len(log_lines(log, "jumped back by")) == 1, log_lines(log, "jumped back by")


def test_a_paused_simulator_leaves_no_motion_standing(robot):
    """The clock stops (and with it the camera): the node's sim-time timers stop too, so nothing would replace the
    last motion command; after image_timeout_s of wall time without a clock tick it sends zero, once, and logs it.
    When the clock runs again, the robot drives on the next frames."""
    twists, log, clock, node = robot
    clock.command("pause")
    paused_at = len(twists)
    assert wait_for(lambda: any(t.twist.linear.x == 0.0 for t in twists[paused_at:]), timeout=EVENT_TIMEOUT_S), \
        f"the last motion command stood while sim time stood still\n{node.output()[-3000:]}"
    assert wait_for(lambda: log_lines(log, "stood still"), timeout=EVENT_TIMEOUT_S), "the pause was not logged"
    first_zero = next(i for i, t in enumerate(twists) if i >= paused_at and t.twist.linear.x == 0.0)
    assert all(t.twist.linear.x == 0.0 for t in twists[first_zero:]), "motion again while the clock stood still"
    assert len(log_lines(log, "stood still")) == 1

    resumed_at = len(twists)
    clock.command("resume")
    assert wait_for(lambda: any(t.twist.linear.x > DRIVING for t in twists[resumed_at:]), timeout=EVENT_TIMEOUT_S), \
        f"no motion after the clock ran again\n{node.output()[-3000:]}"


def test_only_frames_stamped_after_a_jump_back_move_the_robot(ros, drive_checkpoint):
    """The clock and each frame sent by the test, in process, one at a time (control_trigger image: one step per
    frame, answered on rt1_action with the frame's stamp). After the clock goes back from 10 s to 0, a frame stamped
    10.2 s that arrives after the jump (it was on its way) is answered with a hold; the first frame stamped after the
    jump moves the robot, on a history that holds only that frame."""
    rig = SimTimeRig(ros, drive_checkpoint, timeout=EVENT_TIMEOUT_S, control_trigger="image", image_timeout_s=1.0)
    node = rig.node
    ros.send_instruction("move near the red cube")

    def answer(seconds_: float) -> RT1Action:
        rig.send_frame(seconds_)
        return rig.answer_to(seconds_)

    try:
        assert wait_for(lambda: node.controller.instruction is not None and rig.camera.get_subscription_count() > 0,
                        timeout=EVENT_TIMEOUT_S)
        rig.set_clock(10.0)
        assert answer(10.0).mode == RT1Action.MODE_BASE
        rig.set_clock(10.1)
        assert answer(10.1).mode == RT1Action.MODE_BASE
        assert len(node.controller.policy.history) == 2

        rig.set_clock(0.0)  # the frame below is taken by the same executor thread, after the jump's callbacks
        assert answer(10.2).mode == RT1Action.MODE_HOLD, "acted on a frame stamped before the reset"
        rig.set_clock(0.05)
        assert answer(0.05).mode == RT1Action.MODE_BASE, "no motion on the first frame after the reset"
        assert len(node.controller.policy.history) == 1, "frames from before the reset stayed in the history"
    finally:
        rig.close()
