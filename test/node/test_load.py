"""rt1_node under load over Fast DDS: a 30 Hz 1920×1080 rgb8 camera and instructions changing at 10 Hz.

The camera is published from this process (the harness peer), so on two shared cores the publisher competes with the
node; the test measures and prints what was actually delivered rather than assuming 30 Hz. Figures are printed with
`pytest -s`.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import pytest

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_harness import MessageStream, biased_checkpoint, make_image, wait_for
from rt1_ros.msg import RT1Action
from rt1_ros.node.qos import LATCHED
from rt1_ros.node.ros_graph import NANOSECONDS, stamp_ns, to_stamp

BIN_MAX, BIN_MIN = 255, 0
CAMERA_HZ = 30.0
CONTROL_HZ = 10.0
WARM_UP_S = 2.0  # first inferences allocate the allocator's pools; RSS is measured from after this
FRAME_NS = 33_333_333


@pytest.fixture(scope="module")
def drive_checkpoint(tmp_path_factory):
    return biased_checkpoint(tmp_path_factory.mktemp("drive"), mode=1, bins={7: BIN_MAX, 9: BIN_MIN})


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024.0


@dataclass
class LoadFigures:
    seconds: float
    sent_hz: float
    delivered_hz: float
    frames_skipped: int
    control_hz_actions: float
    control_hz_diagnostics: float
    lag_frames_median: float  # newest sent frame when the step began minus the frame the action used
    lag_frames_p90: float
    lag_frames_max: int
    lag_at_receipt_median: float  # the same at the moment the action arrived: adds the inference time
    rss_start_mib: float
    rss_end_mib: float

    def report(self) -> str:
        return (f"{self.seconds:.0f} s of 1920x1080 rgb8: sent {self.sent_hz:.1f} fps, delivered to the node "
                f"{self.delivered_hz:.1f} fps, skipped (replaced before use) {self.frames_skipped}; control "
                f"{self.control_hz_actions:.2f} Hz from rt1_action, {self.control_hz_diagnostics:.2f} Hz from "
                f"/diagnostics; action's frame behind the newest frame sent when its step began: median "
                f"{self.lag_frames_median:.1f}, 90th percentile {self.lag_frames_p90:.1f}, max {self.lag_frames_max} "
                f"(when the action arrived: median {self.lag_at_receipt_median:.1f}) frames; "
                f"RSS {self.rss_start_mib:.0f} -> {self.rss_end_mib:.0f} MiB")


def stream_full_hd(ros, node, seconds: float) -> LoadFigures:
    actions: list[tuple[float, RT1Action]] = []
    ros.peer.create_subscription(RT1Action, "rt1_action", lambda m: actions.append((time.monotonic(), m)), 50)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    ros.send_instruction("move near the red cube")
    publisher = ros.peer.create_publisher(Image, "image", 1)
    width, height = 1920, 1080
    message = Image(width=width, height=height, encoding="rgb8", step=width * 3)
    # one buffer reused: the test must not be what grows the process's memory
    message.data = np.random.default_rng(0).integers(0, 256, (height, width * 3), dtype=np.uint8).tobytes()
    sent_at: list[float] = []
    rss_start = None
    started = time.monotonic()
    while (now := time.monotonic()) - started < seconds:
        if rss_start is None and now - started >= WARM_UP_S:
            rss_start = rss_mib()
        index = len(sent_at)
        message.header.stamp = to_stamp(NANOSECONDS + index * FRAME_NS)
        publisher.publish(message)
        sent_at.append(time.monotonic())
        delay = started + (index + 1) / CAMERA_HZ - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - started
    rss_end = rss_mib()
    time.sleep(0.3)

    steady = [(t, a) for t, a in actions if started + WARM_UP_S <= t <= started + elapsed
              and a.mode == RT1Action.MODE_BASE]
    lags, lags_at_receipt = [], []
    for received, action in steady:
        used = (stamp_ns(action.header.stamp) - NANOSECONDS) // FRAME_NS
        step_began = received - action.inference_ms / 1000.0
        lags.append(sum(1 for t in sent_at if t <= step_began) - 1 - used)
        lags_at_receipt.append(sum(1 for t in sent_at if t <= received) - 1 - used)
    window = steady[-1][0] - steady[0][0] if len(steady) > 1 else 0.0
    rates = [float(v.value) for d in diagnostics for s in d.status if s.name.startswith(f"{ros.namespace}/")
             for v in s.values if v.key == "control_rate_hz"]
    return LoadFigures(seconds=elapsed, sent_hz=len(sent_at) / elapsed, delivered_hz=node.frames_received / elapsed,
                       frames_skipped=node.frames_skipped,
                       control_hz_actions=(len(steady) - 1) / window if window else 0.0,
                       control_hz_diagnostics=statistics.median(rates[-5:]) if rates else 0.0,
                       lag_frames_median=statistics.median(lags) if lags else float("inf"),
                       lag_frames_p90=float(np.percentile(lags, 90)) if lags else float("inf"),
                       lag_frames_max=max(lags) if lags else 10**6,
                       lag_at_receipt_median=statistics.median(lags_at_receipt) if lags else float("inf"),
                       rss_start_mib=rss_start or 0.0,
                       rss_end_mib=rss_end)


def check_load(figures: LoadFigures, throughput: bool) -> None:
    """Behaviour always; the rates only with ``throughput`` (the `full` run), since they measure the machine too:
    on the same 2 shared cores the in-process 1080p publisher alone has delivered anywhere from 5 to 30 fps."""
    print("\n" + figures.report())
    assert figures.control_hz_actions > 0, "no policy step ran under load"
    assert figures.rss_end_mib - figures.rss_start_mib < 100, "memory grows under a steady image stream"
    if figures.delivered_hz > figures.control_hz_actions * 1.5:
        assert figures.frames_skipped > 0, "frames arriving faster than the control rate must be skipped, not queued"
    if not throughput:
        return
    # The node cannot be blamed for frames the publisher never sent: what it must do is use what arrives.
    assert figures.delivered_hz >= 0.5 * CAMERA_HZ, "the camera stream itself did not get through"
    assert figures.control_hz_actions >= 0.9 * CONTROL_HZ and figures.control_hz_diagnostics >= 0.9 * CONTROL_HZ
    # The step takes the newest frame that has arrived: at most the one in flight is newer.
    assert figures.lag_frames_median <= 1, "actions are computed on old frames: a queue is building up"
    # a late step now and then (a GC pause, another build on the shared cores) is tolerated, a habit of them is not
    assert figures.lag_frames_p90 <= 2


@pytest.mark.slow
def test_full_hd_stream_for_10_s_keeps_the_control_rate_on_the_newest_frame(ros, drive_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), control_rate_hz=CONTROL_HZ, diagnostics_rate_hz=2.0,
                              image_timeout_s=1.0)
    twists = ros.collect(Twist, "cmd_vel")
    check_load(stream_full_hd(ros, node, seconds=10.0), throughput=False)
    assert twists and any(t.linear.x > 0.4 for t in twists), "the robot never drove under load"
    ros.remove(node)


@pytest.mark.full
def test_full_hd_stream_for_60_s_keeps_the_control_rate_and_flat_memory(ros, drive_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), control_rate_hz=CONTROL_HZ, diagnostics_rate_hz=2.0,
                              image_timeout_s=1.0)
    figures = stream_full_hd(ros, node, seconds=60.0)
    check_load(figures, throughput=True)
    assert figures.rss_end_mib - figures.rss_start_mib < 50, "memory drifts over a minute of 1080p"
    ros.remove(node)


@pytest.mark.slow
def test_instructions_changing_at_10_hz_each_restart_the_history(ros, drive_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), control_rate_hz=CONTROL_HZ)
    policy = node.controller.policy
    history_at_step: list[tuple[str, int]] = []
    step = policy.select_action

    def recording_step(rgb):
        history_at_step.append((policy.instruction, len(policy.history)))
        return step(rgb)

    policy.select_action = recording_step
    actions = ros.collect(RT1Action, "rt1_action")
    twists = ros.collect(Twist, "cmd_vel")
    camera = MessageStream(ros, Image, "image", lambda i: make_image("rgb8", stamp_ns=i + 1, seed=i), period=0.033)
    instruction = ros.peer.create_publisher(String, "instruction", LATCHED)
    sent = [f"task {i}: move near cube {i}" for i in range(30)]
    started = time.monotonic()
    for index, text in enumerate(sent):
        instruction.publish(String(data=text))
        time.sleep(max(0.0, started + (index + 1) * 0.1 - time.monotonic()))
    assert wait_for(lambda: actions and actions[-1].instruction == sent[-1] and len(
        [1 for text, _ in history_at_step if text == sent[-1]]) >= 6, timeout=30.0)  # returns as soon as true
    camera.stop()
    stepped = list(dict.fromkeys(text for text, _ in history_at_step))
    # How many of the 30 get a step depends on the machine's speed; that the newest one does, in order, does not.
    assert stepped and stepped[-1] == sent[-1], "the newest instruction never reached a control step"
    order = [sent.index(text) for text in stepped]
    assert order == sorted(order), "a step ran on an instruction older than one already used"
    for text in stepped:
        first = next(length for t, length in history_at_step if t == text)
        assert first == 0, f"'{text}' started with {first} frames of the previous instruction's history"
    assert node.controller.stats.errors == 0
    assert twists and twists[-1].linear.x > 0.4, "the node stopped driving"
    print(f"\n{len(sent)} instructions at 10 Hz, {len(stepped)} reached a control step, each from an empty history")
    ros.remove(node)
