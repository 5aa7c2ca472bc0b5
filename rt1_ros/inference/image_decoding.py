"""Camera image bytes -> RGB uint8 (H,W,3), without cv_bridge, honouring row padding (`step`) and endianness.

Every malformed input raises `ImageDecodeError` with a message saying what is wrong, so the node can log it once
and drop the frame. Depth/float encodings are refused: RT-1 was trained on colour images.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    pass


@dataclass(frozen=True)
class _Layout:
    channels: int
    dtype: str  # numpy dtype of one channel value
    order: str  # how channels map onto RGB


_ENCODINGS = {
    "rgb8": _Layout(3, "u1", "rgb"),
    "bgr8": _Layout(3, "u1", "bgr"),
    "rgba8": _Layout(4, "u1", "rgba"),
    "bgra8": _Layout(4, "u1", "bgra"),
    "mono8": _Layout(1, "u1", "mono"),
    "8UC1": _Layout(1, "u1", "mono"),
    "8UC3": _Layout(3, "u1", "bgr"),  # OpenCV convention for untyped 3-channel images
    "8UC4": _Layout(4, "u1", "bgra"),
    "rgb16": _Layout(3, "u2", "rgb"),
    "bgr16": _Layout(3, "u2", "bgr"),
    "rgba16": _Layout(4, "u2", "rgba"),
    "bgra16": _Layout(4, "u2", "bgra"),
    "mono16": _Layout(1, "u2", "mono"),
}
_REFUSED = {"16UC1": "a depth image", "32FC1": "a float (depth) image", "32FC3": "a float image",
            "64FC1": "a float image", "16SC1": "a signed depth image"}

SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


def decode_raw(height: int, width: int, encoding: str, is_bigendian: bool, step: int, data: bytes | memoryview,
               max_pixels: int) -> np.ndarray:
    """sensor_msgs/Image fields -> (H,W,3) uint8 RGB (a view where possible, else a copy)."""
    if encoding in _REFUSED:
        raise ImageDecodeError(f"encoding '{encoding}' is {_REFUSED[encoding]}; RT-1 needs colour "
                               f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    layout = _ENCODINGS.get(encoding)
    if layout is None:
        raise ImageDecodeError(f"unknown image encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image has zero size ({width}×{height})")
    if height * width > max_pixels:
        raise ImageDecodeError(f"image {width}×{height} exceeds max_image_pixels={max_pixels}")
    item = np.dtype(layout.dtype).itemsize
    row_bytes = width * layout.channels * item
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} is smaller than width×channels×bytes = {row_bytes} for '{encoding}'")
    if len(data) < height * step:
        raise ImageDecodeError(f"data has {len(data)} bytes, expected height×step = {height * step}")
    buffer = np.frombuffer(data, dtype=np.uint8, count=height * step).reshape(height, step)
    pixels = buffer[:, :row_bytes]  # (H,row_bytes): drops the row padding
    if item == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        # 16-bit colour keeps its most significant byte: a linear rescale to 8 bits.
        pixels = (np.ascontiguousarray(pixels).view(dtype) >> 8).astype(np.uint8)
    image = pixels.reshape(height, width, layout.channels)
    return _to_rgb(image, layout.order)


def decode_compressed(fmt: str, data: bytes | memoryview, max_pixels: int) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> (H,W,3) uint8 RGB.

    The size declared in the file header is checked before decoding: a few kilobytes of PNG can declare a
    gigapixel image, and OpenCV would allocate all of it. Only JPEG and PNG (what image_transport's `compressed`
    plugin sends) are passed to OpenCV, which keeps its other, rarely exercised decoders out of reach of the network.
    """
    if len(data) == 0:
        raise ImageDecodeError("compressed image is empty")
    data = bytes(data)
    width, height = _declared_size(fmt, data)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"compressed image (format '{fmt}') declares zero size ({width}×{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(f"compressed image (format '{fmt}') declares {width}×{height}, which exceeds "
                               f"max_image_pixels={max_pixels}")
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageDecodeError(f"compressed image (format '{fmt}') could not be decoded: corrupt JPEG/PNG data")
    if decoded.shape[0] * decoded.shape[1] > max_pixels:
        raise ImageDecodeError(f"image {decoded.shape[1]}×{decoded.shape[0]} exceeds max_image_pixels={max_pixels}")
    return decoded[:, :, ::-1]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the image size; C4 (DHT), C8 (reserved) and CC (DAC) share the range but do not.
_JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _declared_size(fmt: str, data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG IHDR or a JPEG start-of-frame segment, without decoding pixels."""
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageDecodeError(f"compressed image (format '{fmt}') could not be decoded: PNG without IHDR")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        position = 2
        while position + 4 <= len(data):
            if data[position] != 0xFF:
                break
            marker = data[position + 1]
            if marker == 0xFF:  # fill byte before a marker
                position += 1
                continue
            length = int.from_bytes(data[position + 2:position + 4], "big")
            if marker in _JPEG_FRAME_MARKERS and position + 9 <= len(data):
                height = int.from_bytes(data[position + 5:position + 7], "big")
                width = int.from_bytes(data[position + 7:position + 9], "big")
                return width, height
            if marker == 0xDA or length < 2:  # scan data before any frame header, or a broken segment
                break
            position += 2 + length
        raise ImageDecodeError(f"compressed image (format '{fmt}') could not be decoded: JPEG without a valid "
                               f"frame header")
    raise ImageDecodeError(f"compressed image (format '{fmt}') could not be decoded: neither JPEG nor PNG data "
                           f"(starts with {data[:8].hex()})")


def _to_rgb(image: np.ndarray, order: str) -> np.ndarray:
    if order == "rgb":
        return image
    if order == "bgr":
        return image[:, :, ::-1]
    if order == "rgba":
        return image[:, :, :3]
    if order == "bgra":
        return image[:, :, 2::-1]
    return np.repeat(image, 3, axis=2)  # mono


def resize_for_model(rgb: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(H,W,3) uint8 -> (size,size,3), or (height,width,3) for a (height, width) size, uint8; area interpolation
    avoids aliasing when shrinking big frames."""
    height, width = (size, size) if isinstance(size, int) else size
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return np.ascontiguousarray(rgb)
    shrinking = rgb.shape[0] > height or rgb.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interpolation)
