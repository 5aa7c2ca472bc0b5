"""instruction_text reads a serialized std_msgs/String exactly, and refuses what rclpy would silently alter."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from rclpy.serialization import serialize_message  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rt1_ros.node.instruction_message import instruction_text  # noqa: E402
from rt1_ros.runtime.controller import InstructionError  # noqa: E402


def serialized(text: str) -> bytes:
    return serialize_message(String(data=text))


def test_the_text_comes_back_as_sent():
    assert instruction_text(serialized("pick up the red cube")) == "pick up the red cube"
    assert instruction_text(serialized("prends le cube vert ✓")) == "prends le cube vert ✓"


def test_a_nul_byte_is_refused_not_cut():
    message = bytearray(serialized("pick up the red cube"))
    message[8 + 4] = 0  # "pick\0up ...": rclpy would hand over "pick"
    with pytest.raises(InstructionError, match="NUL byte at character 4"):
        instruction_text(bytes(message))


def test_invalid_utf8_is_refused_not_replaced():
    message = bytearray(serialized("pick up the red cube"))
    message[8] = 0xFF
    with pytest.raises(InstructionError, match="not valid UTF-8"):
        instruction_text(bytes(message))


def test_truncated_bytes_are_refused():
    with pytest.raises(InstructionError):
        instruction_text(serialized("pick up the red cube")[:10])
