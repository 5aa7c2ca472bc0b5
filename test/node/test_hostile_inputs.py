"""Hostile and malformed inputs sent to a running rt1_node over real Fast DDS topics and services.

For every bad input the node must stay up, say once (rate-limited) on /rosout what was wrong, drop the message, and
send zero motion while nothing valid remains. Inputs the node should take (4K, 16-bit colour, either byte order)
are checked to reach the policy intact.
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from geometry_msgs.msg import Twist
from rcl_interfaces.msg import Log, ParameterType, ParameterValue
from rcl_interfaces.msg import Parameter as ParameterMessage
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from ros_harness import MessageStream, biased_checkpoint, make_image, node_log, wait_for
from rt1_ros.msg import ArmCommand, RT1Action
from rt1_ros.node.qos import LATCHED

BIN_MAX, BIN_MIN = 255, 0
IMAGE_TIMEOUT_S = 0.5
CONTROL_PERIOD_S = 0.1  # the harness runs the node at 10 Hz
SLACK_S = 1.0  # scheduling on two shared CI cores


@pytest.fixture(scope="module")
def drive_checkpoint(tmp_path_factory):
    """Base mode, full speed forward: any motion that leaks through a hold is easy to see."""
    return biased_checkpoint(tmp_path_factory.mktemp("drive"), mode=1, bins={7: BIN_MAX, 9: BIN_MIN})


def raw_image(width: int, height: int, encoding: str, step: int, data: bytes, is_bigendian: int = 0,
              index: int = 0) -> Image:
    message = Image(width=width, height=height, encoding=encoding, step=step, is_bigendian=is_bigendian)
    message.data = data
    message.header.stamp.sec, message.header.stamp.nanosec = 1 + index // 20, (index % 20) * 50_000_000
    return message


def warnings(log: list, fragment: str) -> list:
    return [m.msg for m in log if m.level >= Log.WARN and fragment in m.msg]


def good_image(index: int) -> Image:
    return make_image("rgb8", stamp_ns=1_000_000_000 + index * 50_000_000, seed=index)


def invalid_utf8_encoding(index: int) -> bytes:
    # rclpy publishers take a serialized message as bytes: swap a valid encoding for invalid UTF-8 of equal length
    serialized = serialize_message(make_image("rgb8", stamp_ns=index))
    return serialized.replace(b"rgb8", b"rg\xff\xfe", 1)


def truncated_message(index: int) -> bytes:
    # the serialized bytes cut short inside the pixel data: the node reads the frame's CDR itself
    return serialize_message(make_image("rgb8", stamp_ns=index))[:-50]


BAD_RAW_FRAMES = {
    "unknown encoding": (lambda i: raw_image(8, 6, "yuv_mystery", 24, bytes(144), index=i), "unknown image encoding"),
    "step below width x channels": (lambda i: raw_image(8, 6, "rgb8", 20, bytes(144), index=i), "step 20 is smaller"),
    "data shorter than height x step": (lambda i: raw_image(8, 6, "rgb8", 24, bytes(100), index=i),
                                        "expected height×step"),
    "zero width": (lambda i: raw_image(0, 6, "rgb8", 0, b"", index=i), "zero size"),
    "zero height": (lambda i: raw_image(8, 0, "rgb8", 24, b"", index=i), "zero size"),
    "16-bit depth": (lambda i: raw_image(8, 6, "16UC1", 16, bytes(96), index=i), "depth image"),
    "32-bit float depth": (lambda i: raw_image(8, 6, "32FC1", 32, bytes(192), index=i), "float"),
    "float colour": (lambda i: raw_image(8, 6, "32FC3", 96, bytes(576), index=i), "float"),
    "over max_image_pixels": (lambda i: raw_image(1280, 720, "mono8", 1280, bytes(1280 * 720), index=i),
                              "exceeds max_image_pixels"),
    "non-UTF-8 encoding string": (invalid_utf8_encoding, "encoding is not UTF-8"),
    "truncated serialized message": (truncated_message, "malformed Image message: data needs"),
}


@pytest.mark.parametrize("case", list(BAD_RAW_FRAMES))
def test_malformed_raw_frames_are_dropped_logged_once_and_the_robot_holds(ros, drive_checkpoint, case):
    make_frame, reason = BAD_RAW_FRAMES[case]
    ros.new_namespace()
    log = node_log(ros)
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), max_image_pixels=640 * 480)
    twists = ros.collect(Twist, "cmd_vel")
    actions = ros.collect(RT1Action, "rt1_action")
    ros.send_instruction("move near the red cube")
    camera = MessageStream(ros, Image, "image", make_frame)
    assert wait_for(lambda: node.frames_invalid >= 5 and len(actions) >= 5), f"{case}: frames not seen as invalid"
    assert wait_for(lambda: warnings(log, reason)), f"{case}: no log line saying '{reason}'"
    camera.stop()
    assert len(warnings(log, "dropping camera ")) == 1, "a stream of bad frames must be logged once per throttle"
    assert all(a.mode == RT1Action.MODE_HOLD for a in actions)
    assert twists and all(t.linear.x == 0.0 and t.angular.z == 0.0 for t in twists)
    assert node.controller.stats.inferences == 0
    ros.remove(node)


def test_bad_frames_after_good_ones_stop_the_robot_within_the_image_timeout(ros, drive_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), image_timeout_s=IMAGE_TIMEOUT_S)
    twists = ros.collect(Twist, "cmd_vel")
    ros.send_instruction("move near the red cube")
    camera = MessageStream(ros, Image, "image", good_image)
    assert wait_for(lambda: twists and twists[-1].linear.x > 0.4)
    camera.stop()
    bad = MessageStream(ros, Image, "image", BAD_RAW_FRAMES["step below width x channels"][0])
    switched_at = time.monotonic()
    assert wait_for(lambda: twists[-1].linear.x == 0.0, timeout=5.0), "bad frames must not keep the robot moving"
    assert time.monotonic() - switched_at < IMAGE_TIMEOUT_S + CONTROL_PERIOD_S + SLACK_S
    stopped = len(twists)
    time.sleep(0.5)
    bad.stop()
    assert all(t.linear.x == 0.0 for t in twists[stopped:]), "invalid frames must not restart motion"
    ros.remove(node)


def sixteen_bit_frame(is_bigendian: int):
    """rgb16 whose every value is 0xAB00: decoded right, the policy sees 0xAB everywhere in either byte order."""
    def make(index: int) -> Image:
        values = np.full((6, 8, 3), 0xAB00, dtype=">u2" if is_bigendian else "<u2")
        return raw_image(8, 6, "rgb16", 48, values.tobytes(), is_bigendian=is_bigendian, index=index)
    return make


def uhd_frame(index: int) -> Image:
    # one constant row, so a 25 MB message costs no random generation per frame
    row = np.tile(np.array([0xAB, 0xAB, 0xAB], np.uint8), 3840)
    return raw_image(3840, 2160, "rgb8", 3840 * 3, np.tile(row, 2160).tobytes(), index=index)


ACCEPTED_FRAMES = {
    "rgb16 little-endian": (sixteen_bit_frame(0), (6, 8)),
    "rgb16 big-endian": (sixteen_bit_frame(1), (6, 8)),
    "bgr8 with the big-endian flag (meaningless for 8 bits)": (
        lambda i: raw_image(8, 6, "bgr8", 24, bytes([0xAB]) * 144, is_bigendian=1, index=i), (6, 8)),
    "4K rgb8 3840x2160 (under the default max_image_pixels, resized)": (uhd_frame, (2160, 3840)),
}


@pytest.mark.parametrize("case", list(ACCEPTED_FRAMES))
def test_unusual_but_valid_frames_reach_the_policy_intact(ros, drive_checkpoint, case):
    make_frame, shape = ACCEPTED_FRAMES[case]
    ros.new_namespace()
    # What is checked is decoding and resizing; a 25 MB frame on a starved machine can be older than the harness's
    # 0.5 s image_timeout_s by the time it is acted on, and the stale-frame rule would rightly hold the robot.
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), image_timeout_s=10.0)
    seen: list[np.ndarray] = []
    step = node.controller.policy.select_action

    def recording_step(rgb):
        seen.append(rgb.copy())
        return step(rgb)

    node.controller.policy.select_action = recording_step
    twists = ros.collect(Twist, "cmd_vel")
    ros.send_instruction("move near the red cube")
    camera = MessageStream(ros, Image, "image", make_frame, period=0.1)
    assert wait_for(lambda: len(seen) >= 2 and twists and twists[-1].linear.x > 0.4, timeout=20.0)
    camera.stop()
    assert node.frames_invalid == 0
    assert seen[0].shape == (*shape, 3) and seen[0].dtype == np.uint8
    assert np.all(seen[0] == 0xAB), "pixel values changed on the way to the policy (byte order, channel order?)"
    ros.remove(node)


def jpeg_frame(index: int) -> CompressedImage:
    ok, encoded = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    assert ok
    return CompressedImage(format="jpeg", data=encoded.tobytes())


def png_bomb(index: int) -> CompressedImage:
    """A valid PNG header declaring 50000×50000 pixels (7.5 GB decoded) with a few bytes of pixel data."""
    header = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + (50_000).to_bytes(4, "big") * 2
    return CompressedImage(format="png", data=header + bytes([8, 2, 0, 0, 0]) + bytes(4) + b"\0\0\0\0IDAT" * 4)


BAD_COMPRESSED = {
    "garbage bytes": (lambda i: CompressedImage(format="jpeg", data=bytes(range(256)) * 4), "neither JPEG nor PNG"),
    "empty": (lambda i: CompressedImage(format="jpeg", data=b""), "empty"),
    "JPEG marker then garbage": (lambda i: CompressedImage(format="jpeg", data=b"\xff\xd8" + b"\x13" * 500),
                                 "JPEG without a valid frame header"),
    "PNG declaring 50000x50000": (png_bomb, "exceeds max_image_pixels"),
}


@pytest.mark.parametrize("case", list(BAD_COMPRESSED))
def test_bad_compressed_frames_are_refused_before_decoding(ros, drive_checkpoint, case):
    make_frame, reason = BAD_COMPRESSED[case]
    ros.new_namespace()
    log = node_log(ros)
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), image_transport="compressed")
    twists = ros.collect(Twist, "cmd_vel")
    ros.send_instruction("move near the red cube")
    camera = MessageStream(ros, CompressedImage, "image/compressed", make_frame)
    assert wait_for(lambda: node.frames_invalid >= 5 and warnings(log, reason)), f"{case}: not refused with '{reason}'"
    camera.stop()
    assert len(warnings(log, "dropping camera frame")) == 1
    assert twists and all(t.linear.x == 0.0 for t in twists)
    good = MessageStream(ros, CompressedImage, "image/compressed", jpeg_frame)
    assert wait_for(lambda: twists[-1].linear.x > 0.4), "a valid JPEG after the bad ones must drive again"
    good.stop()
    ros.remove(node)


def truncated_instruction() -> bytes:
    return serialize_message(String(data="move near the red cube"))[:9]


def cdr_string(text: bytes) -> bytes:
    """std_msgs/String as little-endian CDR, built by hand: rclpy cannot serialize a string holding a NUL."""
    body = len(text + b"\x00").to_bytes(4, "little") + text + b"\x00"
    return b"\x00\x01\x00\x00" + body + b"\x00" * (-len(body) % 4)


BAD_INSTRUCTIONS = {
    "empty": (String(data=""), "empty or whitespace only"),
    "whitespace only": (String(data=" \t\n  \r\n"), "empty or whitespace only"),
    "10 kB": (String(data="pick up the red cube " * 500), "more than max_instruction_chars"),
    "invalid UTF-8": (serialize_message(String(data="move near the red cube")).replace(b"red", b"r\xff\xfe"),
                      "not valid UTF-8"),
    "truncated serialized message": (truncated_instruction(), "could not be deserialized"),
    # rclpy's conversion ends the text at the NUL: the node acted on "move near the blue cube" and said nothing
    "embedded NUL": (cdr_string(b"move near the blue cube\x00 then stop"), "contains a NUL"),
    # 1001 characters that whitespace collapse brings to 1000: the limit is on what was sent
    "1001 characters collapsing to 1000": (String(data="a" * 998 + "  b"), "1001 characters"),
}


@pytest.mark.parametrize("case", list(BAD_INSTRUCTIONS))
def test_unusable_instruction_stops_the_episode_and_a_good_one_restarts_it(ros, drive_checkpoint, case):
    message, reason = BAD_INSTRUCTIONS[case]
    ros.new_namespace()
    log = node_log(ros)
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint))
    twists = ros.collect(Twist, "cmd_vel")
    arms = ros.collect(ArmCommand, "arm_command")
    actions = ros.collect(RT1Action, "rt1_action")
    instruction = ros.peer.create_publisher(String, "instruction", LATCHED)
    instruction.publish(String(data="move near the red cube"))
    camera = MessageStream(ros, Image, "image", good_image)
    assert wait_for(lambda: twists and twists[-1].linear.x > 0.4)
    count = len(twists)
    instruction.publish(message)
    assert wait_for(lambda: warnings(log, reason)), f"{case}: no log line saying '{reason}'"
    assert wait_for(lambda: len(twists) > count and twists[-1].linear.x == 0.0, timeout=2.0)
    assert arms and arms[-1].translation.x == 0.0
    time.sleep(0.5)
    settled = [a for a in actions[-3:]]
    assert settled and all(a.mode == RT1Action.MODE_HOLD and a.instruction == "" for a in settled), \
        "the previous task must not continue after an unusable instruction"
    assert twists[-1].linear.x == 0.0
    instruction.publish(String(data="move near the green cylinder"))
    assert wait_for(lambda: twists[-1].linear.x > 0.4), "the node must still take instructions"
    camera.stop()
    ros.remove(node)


def parameter_value(value) -> ParameterValue:
    if isinstance(value, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)


def call(ros, service_type, name, request):
    client = ros.peer.create_client(service_type, f"{ros.namespace}/rt1_node/{name}")
    assert client.wait_for_service(timeout_sec=5)
    future = client.call_async(request)
    assert wait_for(future.done, timeout=5)
    return future.result()


REFUSED_PARAMETERS = [
    ("ema_alpha", 5.0, "ema_alpha", 1.0),  # above its range
    ("ema_alpha", "fast", "ema_alpha", 1.0),  # wrong type
    ("image_timeout_s", 0.0, "image_timeout_s", 0.5),  # would disable the watchdog
    ("max_image_pixels", 0, "max_image_pixels", 4096 * 4096),
    ("max_base_linear_speed", 1e6, "max_base_linear_speed", 0.5),
    ("gripper_open_threshold", 0.9, "gripper_open_threshold", 0.4),  # above the close threshold
    ("control_rate_hz", 50.0, "control_rate_hz", 10.0),  # read-only: needs a restart
]


def test_out_of_range_parameter_updates_over_ros_are_refused_with_a_reason(ros, drive_checkpoint):
    ros.new_namespace()
    node = ros.start_rt1_node(checkpoint=str(drive_checkpoint), image_timeout_s=0.5)
    twists = ros.collect(Twist, "cmd_vel")
    ros.send_instruction("move near the red cube")
    camera = MessageStream(ros, Image, "image", good_image)
    for name, value, _, kept in REFUSED_PARAMETERS:
        request = SetParameters.Request(parameters=[ParameterMessage(name=name, value=parameter_value(value))])
        result = call(ros, SetParameters, "set_parameters", request).results[0]
        assert not result.successful and result.reason, f"{name}={value!r} was accepted"
        current = call(ros, GetParameters, "get_parameters", GetParameters.Request(names=[name])).values[0]
        assert pytest.approx(kept) == (current.double_value if current.type == ParameterType.PARAMETER_DOUBLE
                                       else current.integer_value), f"{name} changed despite the refusal"
    assert node.controller.config.image_timeout_s == 0.5 and node.controller.config.max_base_linear_speed == 0.5
    assert wait_for(lambda: twists and twists[-1].linear.x > 0.4), "refused updates must leave the node running"
    assert max(t.linear.x for t in twists) <= 0.5 + 1e-6
    camera.stop()
    ros.remove(node)
