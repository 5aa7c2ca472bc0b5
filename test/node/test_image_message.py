"""image_fields reads a serialized sensor_msgs/Image as rclpy's own deserialisation does, and refuses malformed bytes
with ImageDecodeError (never another exception, never a read past the end)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from rt1_ros.node.image_message import image_fields  # noqa: E402
from rt1_ros.runtime.image_decoding import ImageDecodeError  # noqa: E402


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
