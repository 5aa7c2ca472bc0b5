import cv2
import numpy as np
import pytest

from rt1_ros.inference.image_decoding import ImageDecodeError, decode_compressed, decode_raw, resize_for_model

MAX = 4096 * 4096
RGB = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def pack(pixels: np.ndarray, padding: int) -> tuple[bytes, int]:
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], padding), 77, np.uint8)], axis=1)
    return padded.tobytes(), padded.shape[1]


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding,pixels", [
    ("rgb8", RGB),
    ("bgr8", RGB[:, :, ::-1]),
    ("rgba8", np.concatenate([RGB, np.full((5, 7, 1), 9, np.uint8)], axis=2)),
    ("bgra8", np.concatenate([RGB[:, :, ::-1], np.full((5, 7, 1), 9, np.uint8)], axis=2)),
])
def test_colour_encodings_give_rgb_honouring_step(encoding, pixels, padding):
    data, step = pack(np.ascontiguousarray(pixels), padding)
    np.testing.assert_array_equal(decode_raw(5, 7, encoding, False, step, data, MAX), RGB)


@pytest.mark.parametrize("padding", [0, 3])
def test_mono8_is_replicated_to_three_channels(padding):
    mono = RGB[:, :, 0]
    data, step = pack(np.ascontiguousarray(mono), padding)
    out = decode_raw(5, 7, "mono8", False, step, data, MAX)
    assert out.shape == (5, 7, 3) and np.all(out == mono[:, :, None])


@pytest.mark.parametrize("bigendian", [False, True])
def test_16_bit_colour_honours_endianness(bigendian):
    wide = RGB.astype(np.uint16) * 256 + 200
    data = wide.astype(">u2" if bigendian else "<u2").tobytes()
    out = decode_raw(5, 7, "rgb16", bigendian, 7 * 6, data, MAX)
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("kwargs,message", [
    (dict(encoding="yuv422_weird"), "unknown image encoding"),
    (dict(encoding="32FC1"), "float"),
    (dict(step=20), "step 20 is smaller"),
    (dict(data=b"\0" * 50), "expected height×step"),
    (dict(height=0), "zero size"),
    (dict(height=5000, width=5000, step=15000, data=b""), "max_image_pixels"),
])
def test_malformed_images_are_refused_with_a_reason(kwargs, message):
    fields = dict(height=5, width=7, encoding="rgb8", is_bigendian=False, step=21, data=RGB.tobytes(),
                  max_pixels=MAX)
    fields.update(kwargs)
    with pytest.raises(ImageDecodeError, match=message):
        decode_raw(**fields)


def test_compressed_png_decodes_and_garbage_is_refused():
    ok, png = cv2.imencode(".png", RGB[:, :, ::-1])
    assert ok
    np.testing.assert_array_equal(decode_compressed("png", png.tobytes(), MAX), RGB)
    with pytest.raises(ImageDecodeError, match="could not be decoded"):
        decode_compressed("jpeg", b"\xff\xd8garbage" * 10, MAX)
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_compressed("jpeg", b"", MAX)


def test_resize_for_model():
    assert resize_for_model(np.zeros((1080, 1920, 3), np.uint8), 300).shape == (300, 300, 3)
    assert resize_for_model(np.zeros((10, 10, 3), np.uint8), 96).shape == (96, 96, 3)
