"""Camera images to RGB arrays without cv_bridge: raw `sensor_msgs/Image` fields and compressed bytes."""

from __future__ import annotations

import cv2
import numpy as np

MAX_IMAGE_PIXELS = 8192 * 8192
"""Largest image accepted (width x height); anything bigger is treated as hostile or corrupt."""


class ImageDecodeError(ValueError):
    """An image that cannot be turned into RGB; the message says why."""


# encoding -> (channels, bytes per channel, OpenCV conversion to RGB or None when already RGB)
_RAW_ENCODINGS: dict[str, tuple[int, int, int | None]] = {
    "rgb8": (3, 1, None),
    "bgr8": (3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": (4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": (1, 1, cv2.COLOR_GRAY2RGB),
    "8uc1": (1, 1, cv2.COLOR_GRAY2RGB),
    "8uc3": (3, 1, cv2.COLOR_BGR2RGB),
    "mono16": (1, 2, cv2.COLOR_GRAY2RGB),
    "16uc1": (1, 2, cv2.COLOR_GRAY2RGB),
    "yuv422_yuy2": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
    "uyvy": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
}

SUPPORTED_ENCODINGS = tuple(sorted(_RAW_ENCODINGS))


def raw_to_rgb(
    height: int, width: int, encoding: str, step: int, data: bytes, is_bigendian: bool = False
) -> np.ndarray:
    """Decode the fields of a `sensor_msgs/Image` into an (H, W, 3) uint8 RGB array."""
    spec = _RAW_ENCODINGS.get(encoding.lower())
    if spec is None:
        raise ImageDecodeError(f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, depth, conversion = spec
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image ({width}x{height})")
    if height * width > MAX_IMAGE_PIXELS:
        raise ImageDecodeError(f"image too large ({width}x{height} > {MAX_IMAGE_PIXELS} pixels)")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} is smaller than a row of {row_bytes} bytes")
    if len(data) < step * height:
        raise ImageDecodeError(f"data has {len(data)} bytes, expected {step * height} ({height} rows of {step})")

    rows = np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    if depth == 2:
        dtype = ">u2" if is_bigendian else "<u2"
        pixels16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        pixels = (pixels16 >> 8).astype(np.uint8)  # keep the 8 most significant bits
    else:
        pixels = np.ascontiguousarray(rows).reshape(height, width, channels)
        if channels == 1:
            pixels = pixels[:, :, 0]
    if conversion is None:
        return pixels
    return cv2.cvtColor(pixels, conversion)


def compressed_to_rgb(data: bytes, image_format: str = "") -> np.ndarray:
    """Decode `sensor_msgs/CompressedImage` bytes (JPEG, PNG, ...) into an (H, W, 3) uint8 RGB array."""
    if not data:
        raise ImageDecodeError("compressed image has no data")
    if "compressedDepth" in image_format:
        raise ImageDecodeError(f"depth images are not supported (format {image_format!r})")
    buffer = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(f"cannot decode {len(data)} compressed bytes (format {image_format!r})")
    if bgr.shape[0] * bgr.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageDecodeError(f"image too large ({bgr.shape[1]}x{bgr.shape[0]})")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_to_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longer side is at most `max_side` (0 = keep); never enlarges."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if max_side <= 0 or longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """RGB array to JPEG bytes (used by the replay camera's compressed mode)."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageDecodeError("JPEG encoding failed")
    return buffer.tobytes()
