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
    """sensor_msgs/CompressedImage (jpeg/png) -> (H,W,3) uint8 RGB."""
    if len(data) == 0:
        raise ImageDecodeError("compressed image is empty")
    array = np.frombuffer(data, dtype=np.uint8)
    decoded = cv2.imdecode(array, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageDecodeError(f"compressed image (format '{fmt}') could not be decoded: not a valid JPEG/PNG")
    if decoded.shape[0] * decoded.shape[1] > max_pixels:
        raise ImageDecodeError(f"image {decoded.shape[1]}×{decoded.shape[0]} exceeds max_image_pixels={max_pixels}")
    return decoded[:, :, ::-1]


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


def resize_for_model(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H,W,3) uint8 -> (size,size,3) uint8; area interpolation avoids aliasing when shrinking big frames."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return np.ascontiguousarray(rgb)
    shrinking = rgb.shape[0] > size or rgb.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=interpolation)
