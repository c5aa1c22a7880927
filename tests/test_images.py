"""Image decoding without cv_bridge, including hostile and malformed input."""

import cv2
import numpy as np
import pytest

from taskmem_nodes.images import ImageDecodeError, compressed_to_rgb, encode_jpeg, raw_to_rgb, resize_to_max_side

RGB = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding,convert", [
    ("rgb8", None), ("bgr8", cv2.COLOR_RGB2BGR), ("rgba8", cv2.COLOR_RGB2RGBA), ("bgra8", cv2.COLOR_RGB2BGRA),
])
def test_color_encodings_round_trip(encoding, convert):
    pixels = RGB if convert is None else cv2.cvtColor(RGB, convert)
    channels = pixels.shape[2]
    out = raw_to_rgb(6, 8, encoding, 8 * channels, pixels.tobytes())
    assert np.array_equal(out, RGB)


def test_padded_rows_and_mono16():
    padded = np.zeros((6, 30), np.uint8)
    padded[:, :24] = RGB.reshape(6, 24)
    assert np.array_equal(raw_to_rgb(6, 8, "rgb8", 30, padded.tobytes()), RGB)
    mono16 = (np.arange(48, dtype="<u2") * 1000).reshape(6, 8)
    out = raw_to_rgb(6, 8, "mono16", 16, mono16.tobytes())
    assert out.shape == (6, 8, 3) and out[5, 7, 0] == (47 * 1000) >> 8


@pytest.mark.parametrize("height,width,encoding,step,size,message", [
    (6, 8, "bayer_rggb8", 8, 48, "unsupported encoding"),
    (0, 8, "rgb8", 24, 0, "empty image"),
    (6, 8, "rgb8", 10, 60, "step"),
    (6, 8, "rgb8", 24, 100, "expected 144"),
    (100_000, 100_000, "mono8", 100_000, 10, "too large"),
])
def test_malformed_raw_images_raise_clear_errors(height, width, encoding, step, size, message):
    with pytest.raises(ImageDecodeError, match=message):
        raw_to_rgb(height, width, encoding, step, bytes(size))


def test_compressed_round_trip_and_corrupt_bytes():
    ok, png = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok and np.array_equal(compressed_to_rgb(png.tobytes(), "png"), RGB)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200  # JPEG is lossy: check a flat colour keeps its channel order
    decoded = compressed_to_rgb(encode_jpeg(red), "jpeg")
    assert decoded.shape == red.shape and decoded[..., 0].mean() > 180 and decoded[..., 2].mean() < 20
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        compressed_to_rgb(b"\xff\xd8\xff garbage", "jpeg")
    with pytest.raises(ImageDecodeError, match="no data"):
        compressed_to_rgb(b"", "png")


def test_resize_keeps_aspect_and_never_enlarges():
    image = np.zeros((480, 640, 3), np.uint8)
    assert resize_to_max_side(image, 320).shape == (240, 320, 3)
    assert resize_to_max_side(image, 1000).shape == (480, 640, 3)
    assert resize_to_max_side(image, 0).shape == (480, 640, 3)
