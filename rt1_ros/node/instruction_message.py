"""The text of an instruction message, read exactly: rclpy's conversion of std_msgs/String cuts the text at a NUL and
turns invalid UTF-8 into U+FFFD, either of which would hand the policy a different task than the one sent, so
rt1_node subscribes to the serialized bytes and reads the CDR string itself."""
from __future__ import annotations

from rclpy.serialization import deserialize_message
from std_msgs.msg import String

from rt1_ros.runtime.controller import InstructionError


def instruction_text(serialized: bytes) -> str:
    """The text of a serialized std_msgs/String; InstructionError when it is malformed, holds a NUL or is not valid
    UTF-8. Read from the CDR bytes themselves: rclpy's conversion cuts the text at a NUL and turns invalid UTF-8
    into U+FFFD, either of which would hand the policy a different task than the one sent."""
    try:
        deserialize_message(serialized, String)
    except Exception as exc:  # rclpy raises its own RMWError for truncated or corrupt CDR
        raise InstructionError(f"instruction message could not be deserialized ({len(serialized)} bytes): "
                               f"{exc}") from exc
    raw = _cdr_string_bytes(serialized)
    if raw is None:
        raise InstructionError(f"instruction message is not a CDR string ({len(serialized)} bytes)")
    if b"\x00" in raw:
        raise InstructionError(f"instruction contains a NUL byte at character {raw.index(0)}: the text after it "
                               "would be silently dropped")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InstructionError("instruction is not valid UTF-8; invalid bytes would have become U+FFFD") from exc


def _cdr_string_bytes(serialized: bytes) -> bytes | None:
    """The bytes of the one string field of a serialized std_msgs/String, without its terminating NUL.

    Layout: a 4-byte encapsulation header (the low bit of its second byte set: little endian), a uint32 length
    counting the terminating NUL, the bytes. Both XCDR1 and XCDR2 lay a lone string out this way."""
    if len(serialized) < 9:
        return None
    length = int.from_bytes(serialized[4:8], "little" if serialized[1] & 1 else "big")
    if length < 1 or 8 + length > len(serialized) or serialized[8 + length - 1] != 0:
        return None
    return bytes(serialized[8:8 + length - 1])
