"""image_fields reads a serialized sensor_msgs/Image as rclpy's own deserialisation does, and refuses malformed bytes
with ImageDecodeError (never another exception, never a read past the end)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from rt1_ros.node.image_message import image_fields  # noqa: E402
from rt1_ros.inference.image_decoding import ImageDecodeError  # noqa: E402


def image(frame_id: str, encoding: str, height: int, width: int, step: int, bigendian: int, seed: int) -> Image:
    message = Image(height=height, width=width, encoding=encoding, is_bigendian=bigendian, step=step)
    message.header.frame_id = frame_id
    message.header.stamp.sec = -3 + seed  # int32: negative stamps are legal
    message.header.stamp.nanosec = 999_999_999 - seed
    message.data = np.random.default_rng(seed).integers(0, 256, height * step, np.uint8).tobytes()
    return message


# Every string length modulo 4 (the fields after each string start at every alignment), empty data, row padding.
CASES = [
    ("", "rgb8", 2, 3, 9, 0),
    ("c", "bgr8", 3, 2, 8, 0),
    ("ca", "mono8", 4, 5, 5, 0),
    ("cam", "mono16", 2, 2, 6, 1),
    ("head_camera_optical_frame", "rgba8", 1, 1, 4, 0),
    ("camera", "8UC3", 0, 0, 0, 0),
    ("kamera_ü", "rgb16", 2, 3, 20, 1),
]


@pytest.mark.parametrize("seed,case", list(enumerate(CASES)))
def test_fields_equal_rclpys_deserialisation(seed, case):
    sent = image(*case, seed=seed)
    serialized = serialize_message(sent)
    fields = image_fields(serialized)
    reference = deserialize_message(serialized, Image)
    assert (fields.stamp_sec, fields.stamp_nanosec) == (reference.header.stamp.sec, reference.header.stamp.nanosec)
    assert fields.frame_id == reference.header.frame_id == case[0]
    assert (fields.height, fields.width, fields.encoding, fields.step) == (
        reference.height, reference.width, reference.encoding, reference.step)
    assert fields.is_bigendian == bool(reference.is_bigendian)
    assert bytes(fields.data) == bytes(reference.data) == bytes(sent.data)


def test_the_pixels_are_a_view_not_a_copy():
    serialized = serialize_message(image("camera", "rgb8", 48, 64, 192, 0, seed=1))
    fields = image_fields(serialized)
    assert fields.data.obj is serialized and len(fields.data) == 48 * 192


def test_every_truncation_is_refused_by_name():
    serialized = serialize_message(image("cam", "rgb8", 2, 2, 6, 0, seed=2))
    for end in range(len(serialized)):
        with pytest.raises(ImageDecodeError, match="malformed Image message"):
            image_fields(serialized[:end])


def test_corrupt_headers_lengths_and_strings_are_refused():
    serialized = bytearray(serialize_message(image("cam", "rgb8", 2, 2, 6, 0, seed=3)))
    not_cdr = bytearray(serialized)
    not_cdr[1] = 0x05
    with pytest.raises(ImageDecodeError, match="not CDR-encapsulated"):
        image_fields(bytes(not_cdr))
    huge_count = bytearray(serialized)
    huge_count[-12 - 4:-12] = (2 ** 32 - 1).to_bytes(4, "little")  # data's length, before its 12 bytes
    with pytest.raises(ImageDecodeError, match="data needs 4294967295 bytes"):
        image_fields(bytes(huge_count))
    unterminated = bytearray(serialized)
    unterminated[4 + 8 + 4 + 3] = ord("x")  # frame_id "cam\0" -> "camx"
    with pytest.raises(ImageDecodeError, match="frame_id is not NUL-terminated"):
        image_fields(bytes(unterminated))


def cdr_image(kind: int, order: str, frame_id: str, encoding: str, height: int, width: int, step: int,
              data: bytes) -> bytes:
    """An Image laid out by hand (independently of image_fields): the encapsulation kind, then each field aligned to
    its size counted from the byte after the 4-byte header."""
    import struct

    body = bytearray()

    def align(size: int) -> None:
        body.extend(bytes(-len(body) % size))

    def uint32(value: int, fmt: str = "I") -> None:
        align(4)
        body.extend(struct.pack(order + fmt, value))

    def string(text: str) -> None:
        raw = text.encode() + b"\0"
        uint32(len(raw))
        body.extend(raw)

    uint32(-7, "i")
    uint32(123)
    string(frame_id)
    uint32(height)
    uint32(width)
    string(encoding)
    body.append(1)
    uint32(step)
    uint32(len(data))
    body.extend(data)
    return bytes([0, kind, 0, 0]) + bytes(body)


@pytest.mark.parametrize("kind,order", [(0x00, ">"), (0x06, ">"), (0x07, "<")])
def test_big_endian_and_plain_cdr2_messages_are_read(kind, order):
    pixels = bytes(range(7 * 5))
    fields = image_fields(cdr_image(kind, order, "cam", "mono8", 5, 7, 7, pixels))
    assert (fields.stamp_sec, fields.stamp_nanosec, fields.frame_id) == (-7, 123, "cam")
    assert (fields.height, fields.width, fields.encoding, fields.is_bigendian, fields.step) == (5, 7, "mono8", True, 7)
    assert bytes(fields.data) == pixels


def test_the_hand_layout_matches_rclpys_little_endian_bytes():
    """The hand layout above is checked against rclpy's own serialisation, so the big-endian cases test the parser
    and not a layout of the test's own invention."""
    sent = Image(height=5, width=7, encoding="mono8", is_bigendian=1, step=7)
    sent.header.frame_id = "cam"
    sent.header.stamp.sec, sent.header.stamp.nanosec = -7, 123
    sent.data = bytes(range(35))
    expected = bytearray(serialize_message(sent))
    padding = 4 + 8 + 8 + 4 + 4 + 10 + 1  # the byte after is_bigendian: Fast CDR leaves it unwritten (any value)
    expected[padding] = 0
    assert cdr_image(0x01, "<", "cam", "mono8", 5, 7, 7, bytes(range(35))) == bytes(expected)
