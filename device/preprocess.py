"""Image -> model input, shared by training, export calibration and the device.

Everything here is numpy + OpenCV so the Pi can run it. Images enter in OpenCV's convention
(BGR or single-channel gray, uint8). Two steps, kept apart on purpose:

* :func:`fit_image` makes the uint8 picture the model sees (colour, centre square, resize). The
  training loaders cache datasets at this stage, which is cheap to hold in memory.
* :func:`to_input` scales uint8 to the float32 the model takes. A full-int8 model's input
  quantisation (scale ~1/255) then maps straight back onto the pixel values.
"""

from __future__ import annotations

import cv2
import numpy as np


def composite_on_white(image: np.ndarray) -> np.ndarray:
    """BGRA -> BGR with transparent pixels shown as white paper, the way a viewer shows them.

    Dropping alpha instead exposes whatever colour transparent pixels happen to store, often
    black: a PNG with its ink in the alpha channel would become an all-black frame.
    """
    alpha = image[:, :, 3:4].astype(np.float32) / 255.0
    colour = image[:, :, :3].astype(np.float32)
    return np.clip(colour * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR, BGRA; 8 or 16 bit) -> 8-bit BGR, alpha onto white."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return composite_on_white(image)
    return image


def to_colour(image: np.ndarray, colour: str) -> np.ndarray:
    """Convert an OpenCV image (gray, BGR or BGRA) to ``gray`` (H, W) or ``rgb`` (H, W, 3).
    Transparent pixels become white (:func:`composite_on_white`)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = composite_on_white(image)
    if colour == "gray":
        if image.ndim == 2:
            return image
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(image, code)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square: the camera ROI and the dataset crops share this geometry."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (height, width): area averaging when shrinking (no aliasing), linear when growing."""
    height, width = size
    shrinking = image.shape[0] >= height and image.shape[1] >= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=interpolation)


def fit_image(image: np.ndarray, spec: dict) -> np.ndarray:
    """An OpenCV image -> uint8 (H, W, C) at the model's size and colour, per ``spec``.

    For colour models the BGR -> RGB swap comes after the resize (a channel permutation
    commutes with per-channel resizing, so the result is identical, on 1/20th of the pixels).
    """
    if image.ndim == 3 and image.shape[2] == 4:
        image = composite_on_white(image)
    late_swap = spec["colour"] == "rgb" and image.ndim == 3 and image.shape[2] == 3
    picture = image if late_swap else to_colour(image, spec["colour"])
    if spec.get("crop") == "center_square":
        picture = center_square(picture)
    picture = resize(picture, tuple(spec["size"]))
    if late_swap:
        picture = to_colour(picture, "rgb")
    if picture.ndim == 2:
        picture = picture[:, :, None]
    return np.ascontiguousarray(picture, dtype=np.uint8)


def to_input(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 pixels (H, W, C) or (N, H, W, C) -> float32 model input, scaled per ``spec``."""
    return pixels.astype(np.float32) * np.float32(spec["scale"]) + np.float32(spec["offset"])


def preprocess(image: np.ndarray, spec: dict) -> np.ndarray:
    """One OpenCV image -> a batch of one float32 model input."""
    return to_input(fit_image(image, spec), spec)[None]
