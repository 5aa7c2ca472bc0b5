"""Faults a deployed rt1_node must survive, injected into the real node and observed over Fast DDS: a camera that
stops, an inference that raises or returns NaN, a bad checkpoint at start-up, and SIGINT/SIGTERM while driving."""
from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path

import pytest
import torch

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist, TwistStamped
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_harness import MessageStream, NodeProcess, biased_checkpoint, make_image, wait_for
from rt1_ros.model.action_tokenizer import ActionSpaceConfig
from rt1_ros.model.checkpoint import WEIGHTS_FILE, save_pretrained
from rt1_ros.model.rt1 import RT1, RT1Config
from rt1_ros.msg import ArmCommand
from rt1_ros.node.qos import LATCHED
from rt1_ros.node.ros_graph import NANOSECONDS, stamp_ns, to_stamp

BIN_MAX, BIN_MIN = 255, 0
CONTROL_PERIOD_S = 0.1  # the harness runs the node at 10 Hz
SLACK_S = 0.5  # thread scheduling on two shared CI cores


class TimedCamera(MessageStream):
    """A camera whose last publish time is known, to time the watchdog from the last frame actually sent."""

    def __init__(self, ros, period: float = 0.05) -> None:
        self.last_sent_at = 0.0
        super().__init__(ros, Image, "image", self._frame, period=period)

    def _frame(self, index: int) -> Image:
        self.last_sent_at = time.monotonic()
        return make_image("rgb8", stamp_ns=1_000_000_000 + index * 50_000_000, seed=index)


def test_camera_loss_zeroes_base_and_arm_within_timeout_plus_one_period_and_recovers(ros, arm_checkpoint):
    timeout_s = 0.4
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(arm_checkpoint), image_timeout_s=timeout_s, arm_output="both")
    arms: list = []
    servo: list = []
    twists: list = []
    ros.peer.create_subscription(ArmCommand, "arm_command", lambda m: arms.append((time.monotonic(), m)), 10)
    ros.peer.create_subscription(TwistStamped, "servo_twist", lambda m: servo.append((time.monotonic(), m)), 10)
    ros.peer.create_subscription(Twist, "cmd_vel", lambda m: twists.append((time.monotonic(), m)), 10)
    camera = TimedCamera(ros)
    ros.send_instruction("lift the red cube")
    assert wait_for(lambda: arms and arms[-1][1].translation.z > 0.04), "arm never moved"
    camera.stop()
    time.sleep(0.1)  # a tick already being published when stopped
    last_frame = camera.last_sent_at
    assert wait_for(lambda: arms[-1][1].translation.z == 0.0 and servo[-1][1].twist.linear.z == 0.0, timeout=3.0)
    first_zero = next(t for t, m in arms if t > last_frame and m.translation.z == 0.0)
    latency = first_zero - last_frame
    # Wall-clock latency is the machine's as much as the node's: printed here; the bound itself is asserted on a
    # simulated clock in test_camera_loss_on_a_simulated_clock_never_moves_on_a_frame_older_than_the_timeout.
    print(f"camera loss -> zero arm command after {latency * 1000:.0f} ms "
          f"(image_timeout_s {timeout_s * 1000:.0f} ms + period {CONTROL_PERIOD_S * 1000:.0f} ms)")
    assert latency < 10 * (timeout_s + CONTROL_PERIOD_S + SLACK_S), "the watchdog did not fire in any useful time"
    assert all(m.translation.z == 0.0 for t, m in arms if t > first_zero + 0.01), "motion after the watchdog fired"
    assert all(m.linear.x == 0.0 and m.angular.z == 0.0 for _, m in twists), "arm mode must never drive the base"
    camera = TimedCamera(ros)
    assert wait_for(lambda: arms[-1][1].translation.z > 0.04), "motion must resume when images return"
    camera.stop()
    ros.remove(node)


class SimulatedClock:
    """/clock from the test at ``rate`` sim seconds per wall second, in ticks of ``tick_s`` sim seconds, with a
    camera stamped on it: the node's watchdog then runs on time the test controls."""

    def __init__(self, ros, rate: float = 0.25, tick_s: float = 0.0025, frame_every: int = 20) -> None:
        from rosgraph_msgs.msg import Clock

        self.ros, self.tick_s, self.frame_every = ros, tick_s, frame_every
        self.ticks = 0
        self.camera_on = True
        self.last_frame_s = None
        self._clock_type = Clock
        self._clock = ros.peer.create_publisher(Clock, "/clock", 10)
        self._image = ros.peer.create_publisher(Image, "image", 10)
        self.timer = ros.peer.create_timer(tick_s / rate, self._tick)

    def now_s(self) -> float:
        return 100.0 + self.ticks * self.tick_s

    def _tick(self) -> None:
        self.ticks += 1
        seconds = self.now_s()
        message = self._clock_type()
        message.clock = to_stamp(round(seconds * NANOSECONDS))
        self._clock.publish(message)
        if self.camera_on and self.ticks % self.frame_every == 0:
            image = make_image("rgb8", seed=self.ticks)
            image.header.stamp = message.clock
            self._image.publish(image)
            self.last_frame_s = seconds

    def stop(self) -> None:
        self.timer.cancel()


def test_camera_loss_on_a_simulated_clock_never_moves_on_a_frame_older_than_the_timeout(ros, drive_checkpoint):
    """The stale-frame rule on time the test controls (use_sim_time): no motion command is stamped later than the
    last frame + image_timeout_s (+ one clock tick between the node's check and its stamp), and zero follows."""
    timeout_s = 0.3
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), image_timeout_s=timeout_s, use_sim_time=True,
                              base_output="twist_stamped", control_rate_hz=10.0)
    twists: list = []
    ros.peer.create_subscription(TwistStamped, "cmd_vel", twists.append, 50)
    clock = SimulatedClock(ros)
    ros.send_instruction("move near the red cube")
    try:
        assert wait_for(lambda: twists and twists[-1].twist.linear.x > 0.4, timeout=60), "never drove on sim time"
        clock.camera_on = False
        assert wait_for(lambda: clock.last_frame_s is not None and clock.now_s() > clock.last_frame_s + 2 * timeout_s
                        and twists[-1].twist.linear.x == 0.0, timeout=60), "no zero motion after the camera stopped"
        last_frame = clock.last_frame_s

        def stamp_s(message) -> float:
            return stamp_ns(message.header.stamp) / NANOSECONDS

        moving = [stamp_s(t) for t in twists if t.twist.linear.x != 0.0]
        zero = next(stamp_s(t) for t in twists if t.twist.linear.x == 0.0 and stamp_s(t) > last_frame)
        print(f"\nsim clock: last motion {max(moving) - last_frame:.3f} s, first zero {zero - last_frame:.3f} s "
              f"after the last frame (image_timeout_s {timeout_s})")
        assert max(moving) <= last_frame + timeout_s + clock.tick_s, "motion on a frame older than image_timeout_s"
    finally:
        clock.stop()
        ros.remove(node)


def nan_tokens(encode_frame):
    def encode(frame, conditioning):
        return encode_frame(frame, conditioning) * float("nan")
    return encode


def device_error(encode_frame):
    def encode(frame, conditioning):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return encode


@pytest.mark.parametrize("fault,reason", [(nan_tokens, "non-finite"), (device_error, "illegal memory access")])
def test_failing_inference_stops_the_robot_reports_error_and_recovers(ros, drive_checkpoint, fault, reason):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), diagnostics_rate_hz=5.0)
    twists = ros.collect(Twist, "cmd_vel")
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    mine = f"{ros.namespace}/rt1_node:"

    def statuses():
        return [s for d in diagnostics for s in d.status if s.name.startswith(mine)]

    camera = MessageStream(ros, Image, "image", lambda i: make_image("rgb8", stamp_ns=i + 1, seed=i))
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: twists and twists[-1].linear.x > 0.4)
    path = node.controller.policy.inference_path  # what each step runs, whichever backend
    healthy = path.encode_frame
    path.encode_frame = fault(healthy)
    count = len(twists)
    # The zero goes out from the failing step itself; the wait only absorbs scheduling on a starved shared machine.
    assert wait_for(lambda: len(twists) > count and twists[-1].linear.x == 0.0, timeout=5.0), "robot not stopped"
    assert wait_for(lambda: any(s.level == DiagnosticStatus.ERROR and reason in s.message for s in statuses()))
    stopped = len(twists)
    time.sleep(0.3)
    assert all(t.linear.x == 0.0 for t in twists[stopped:]), "the robot moved while inference was failing"
    path.encode_frame = healthy
    assert wait_for(lambda: twists[-1].linear.x > 0.4), "the node must recover on the next good step"
    recovered = len(statuses())
    assert wait_for(lambda: any(s.level == DiagnosticStatus.OK for s in statuses()[recovered:]))
    assert node.controller.stats.errors >= 1
    camera.stop()
    ros.remove(node)


def test_a_single_failed_step_between_reports_still_shows_as_error(ros, drive_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), diagnostics_rate_hz=1.0)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    twists = ros.collect(Twist, "cmd_vel")
    camera = MessageStream(ros, Image, "image", lambda i: make_image("rgb8", stamp_ns=i + 1, seed=i))
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: twists and twists[-1].linear.x > 0.4)
    path = node.controller.policy.inference_path  # what each step runs, whichever backend
    healthy = path.encode_frame

    def fail_once(frame, conditioning):
        path.encode_frame = healthy
        raise RuntimeError("transient device error")

    reports = len(diagnostics)
    path.encode_frame = fail_once
    assert wait_for(lambda: node.controller.stats.errors == 1)
    mine = f"{ros.namespace}/rt1_node:"
    assert wait_for(lambda: any(s.level == DiagnosticStatus.ERROR and "transient device error" in s.message
                                and s.name.startswith(mine) for d in diagnostics[reports:] for s in d.status),
                    timeout=10.0), \
        "a glitch between two 1 Hz reports was not reported"
    camera.stop()
    ros.remove(node)


def test_checkpoint_that_computes_nan_never_moves_the_robot(ros, tmp_path):
    torch.manual_seed(0)
    model = RT1(RT1Config.from_yaml("tiny"))
    with torch.no_grad():
        model.action_head.heads[7].bias[BIN_MAX] = float("nan")
    checkpoint = save_pretrained(model, tmp_path / "nan", ActionSpaceConfig.from_yaml())
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(checkpoint))
    twists = ros.collect(Twist, "cmd_vel")
    camera = MessageStream(ros, Image, "image", lambda i: make_image("rgb8", stamp_ns=i + 1, seed=i))
    ros.send_instruction("move near the red cube")
    assert wait_for(lambda: node.controller.stats.errors >= 5)
    camera.stop()
    assert twists and all(t.linear.x == 0.0 and t.angular.z == 0.0 for t in twists)
    assert "non-finite" in node.controller.stats.last_error
    ros.remove(node)


def truncated(directory: Path) -> Path:
    weights = directory / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return directory


def of_another_architecture(directory: Path) -> Path:
    """config.yaml says tiny; the tensors come from a tiny variant with a wider transformer feed-forward."""
    config = RT1Config.from_yaml("tiny")
    wider = dataclasses.replace(config, transformer=dataclasses.replace(config.transformer, ffn_dim=512))
    other = save_pretrained(RT1(wider), directory.parent / "wider", ActionSpaceConfig.from_yaml())
    (directory / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    return directory


def alias_bombed(directory: Path) -> Path:
    """A 'billion laughs' YAML bomb (9**9 leaves) as the value of a scalar field: it hung start-up for minutes at
    gigabytes of memory while an error message formatted it."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    config = directory / "config.yaml"
    config.write_text("\n".join(lines) + "\n" + config.read_text().replace("image_size: 96", "image_size: *l8"))
    return directory


def weights_on_dev_zero(directory: Path) -> Path:
    (directory / WEIGHTS_FILE).unlink()
    (directory / WEIGHTS_FILE).symlink_to("/dev/zero")
    return directory


def test_bad_checkpoints_stop_the_node_process_at_start_with_file_and_reason(ros, tmp_path):
    cases = {
        "alias bomb": (alias_bombed(biased_checkpoint(tmp_path / "bomb", 1, {})), "anchors and aliases"),
        "weights on /dev/zero": (weights_on_dev_zero(biased_checkpoint(tmp_path / "zero", 1, {})),
                                 "character device"),
        "missing": (tmp_path / "no_such_checkpoint", "checkpoint directory not found"),
        "truncated": (truncated(biased_checkpoint(tmp_path / "half", 1, {})), "corrupt or truncated"),
        "another architecture": (of_another_architecture(biased_checkpoint(tmp_path / "other", 1, {})),
                                 "does not match the model architecture"),
    }
    ros.new_namespace()
    # Started together: each costs ~10 s of imports, mostly waiting on disk and the other core.
    processes = {name: NodeProcess(ros.namespace + name.replace(" ", "_"),
                                   dict(checkpoint=str(path), device="cpu", start_enabled=True))
                 for name, (path, _) in cases.items()}
    try:
        for name, (path, reason) in cases.items():
            code = processes[name].wait(timeout=120)
            output = processes[name].output()
            assert code != 0, f"{name}: the node started with a bad checkpoint"
            assert str(path) in output and reason in output, f"{name}: message must name the file and the problem:\n" \
                                                             f"{output[-1500:]}"
        assert "shape mismatch" in processes["another architecture"].output()
    finally:
        for process in processes.values():
            process.stop()


def test_sigint_and_sigterm_send_a_zero_command_before_a_clean_exit(ros, drive_checkpoint):
    ros.new_namespace()
    signals = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}
    # command_rate_hz: the republish timer is the callback most likely to race the shutdown's zero command
    processes = {name: NodeProcess(f"{ros.namespace}/{name}", dict(checkpoint=str(drive_checkpoint), device="cpu",
                                                                     start_enabled=True, control_rate_hz=10.0,
                                                                     command_rate_hz=50.0))
                 for name in signals}
    streams: list[MessageStream] = []
    try:
        twists = {name: [] for name in signals}
        arms = {name: [] for name in signals}
        for name in signals:
            ros.peer.create_subscription(Twist, f"{name}/cmd_vel", lambda m, n=name: twists[n].append(
                (time.monotonic(), m)), 50)
            ros.peer.create_subscription(ArmCommand, f"{name}/arm_command", lambda m, n=name: arms[n].append(
                (time.monotonic(), m)), 50)
            streams.append(MessageStream(ros, Image, f"{name}/image", lambda i: make_image("rgb8", stamp_ns=i + 1)))
            instruction = ros.peer.create_publisher(String, f"{name}/instruction", LATCHED)
            instruction.publish(String(data="move near the red cube"))
        for name in signals:
            assert wait_for(lambda n=name: twists[n] and twists[n][-1][1].linear.x > 0.4, timeout=90), \
                f"{name}: node never drove\n{processes[name].output()[-1500:]}"
        for name, number in signals.items():
            signalled_at = time.monotonic()
            processes[name].process.send_signal(number)
            assert processes[name].wait(timeout=30) == 0, processes[name].output()[-1500:]
            time.sleep(0.3)  # the last messages in flight
            after = [m for t, m in twists[name] if t > signalled_at]
            assert after and after[-1].linear.x == 0.0 and after[-1].angular.z == 0.0, \
                f"{name}: the last command before exit must be zero motion"
            assert arms[name][-1][1].translation.x == 0.0
            assert "publishing zero motion" in processes[name].output()
            # A callback still dispatched while the node was being destroyed used to leave this on stderr.
            assert "never retrieved" not in processes[name].output(), processes[name].output()[-1500:]
            assert "Traceback" not in processes[name].output(), processes[name].output()[-1500:]
    finally:
        for stream in streams:
            stream.stop()
        for process in processes.values():
            process.stop()
