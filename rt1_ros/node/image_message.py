"""The fields of a serialized sensor_msgs/Image, read from its CDR bytes with the pixels left where they are.

Why: rclpy's typed subscription converts every received frame into a Python message (CDR -> C struct -> Python
array, two copies of 921 kB for a 640x480 rgb8 frame), for each of a camera's 30 frames a second, though the node
uses only the frame a control step takes. Subscribed as raw bytes, a frame costs
one copy out of the middleware; its fields are read here only when a step decodes it, and the pixel data stays a
view into those bytes until `decode_raw` converts it.

Layout (XCDR1, and PLAIN_CDR2, which lays out a struct of these field types identically): a 4-byte encapsulation
header (second byte 0x00/0x01 big/little endian for CDR, 0x06/0x07 for PLAIN_CDR2), then, aligned from the byte after
it: header.stamp (int32 sec, uint32 nanosec), header.frame_id (string: uint32 length with its NUL, bytes), height,
width (uint32), encoding (string), is_bigendian (uint8), step (uint32), data (uint32 count, bytes).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from rt1_ros.inference.image_decoding import ImageDecodeError

_LITTLE_ENDIAN_KINDS = {0x01: True, 0x00: False, 0x07: True, 0x06: False}


@dataclass(frozen=True)
class ImageFields:
    stamp_sec: int  # header.stamp
    stamp_nanosec: int
    frame_id: str
    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: memoryview  # the pixel bytes, a view into the serialized message


class _Reader:
    def __init__(self, serialized: bytes | memoryview, little_endian: bool) -> None:
        self.buffer = memoryview(serialized)
        self.position = 4  # after the encapsulation header; alignment counts from here
        self.order = "<" if little_endian else ">"

    def _align(self, size: int) -> None:
        self.position += (-(self.position - 4)) % size

    def take(self, count: int, what: str) -> memoryview:
        end = self.position + count
        if count < 0 or end > len(self.buffer):
            raise ImageDecodeError(f"malformed Image message: {what} needs {count} bytes at offset {self.position}, "
                                   f"the message has {len(self.buffer)}")
        view = self.buffer[self.position:end]
        self.position = end
        return view

    def uint32(self, what: str) -> int:
        self._align(4)
        return struct.unpack(self.order + "I", self.take(4, what))[0]

    def int32(self, what: str) -> int:
        self._align(4)
        return struct.unpack(self.order + "i", self.take(4, what))[0]

    def uint8(self, what: str) -> int:
        return self.take(1, what)[0]

    def string(self, what: str, errors: str = "strict") -> str:
        length = self.uint32(f"{what}'s length")
        if length == 0:
            return ""  # some writers send an empty string without its NUL
        raw = self.take(length, what)
        if raw[-1] != 0:
            raise ImageDecodeError(f"malformed Image message: {what} is not NUL-terminated")
        try:
            return bytes(raw[:-1]).decode("utf-8", errors)
        except UnicodeDecodeError as exc:
            raise ImageDecodeError(f"malformed Image message: {what} is not UTF-8") from exc


def image_fields(serialized: bytes | memoryview) -> ImageFields:
    """The fields of a serialized sensor_msgs/Image; ImageDecodeError naming what is malformed."""
    if len(serialized) < 4 or serialized[0] != 0 or serialized[1] not in _LITTLE_ENDIAN_KINDS:
        kind = bytes(serialized[:2]).hex() if len(serialized) >= 2 else "none"
        raise ImageDecodeError(f"malformed Image message: not CDR-encapsulated (kind {kind}, {len(serialized)} bytes)")
    reader = _Reader(serialized, _LITTLE_ENDIAN_KINDS[serialized[1]])
    stamp_sec, stamp_nanosec = reader.int32("header.stamp.sec"), reader.uint32("header.stamp.nanosec")
    frame_id = reader.string("header.frame_id", errors="replace")  # not used to act: an odd one drops no frame
    height = reader.uint32("height")
    width = reader.uint32("width")
    encoding = reader.string("encoding")
    is_bigendian = bool(reader.uint8("is_bigendian"))
    step = reader.uint32("step")
    count = reader.uint32("data's length")
    data = reader.take(count, "data")
    return ImageFields(stamp_sec=stamp_sec, stamp_nanosec=stamp_nanosec, frame_id=frame_id, height=height,
                       width=width, encoding=encoding, is_bigendian=is_bigendian, step=step, data=data)
