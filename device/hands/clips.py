"""A hand-sign video clip played as camera footage, for the tracking test and the bench.

The training photos include seven 60-frame clips: crops of consecutive video frames of one
person, named ``<class>.<video>-<frame>_jpg.rf.<hash>_<n>.jpg`` (see
``train.data.images.source_group``). Put in frame order and pasted at one size onto one
640x480 scene that drifts slowly (so the crop has to follow), with fresh sensor noise and JPEG
each frame, they play as a webcam would show them. Nothing is stored: frames are built on demand.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np

from device.footage import FRAME, camera_artifacts, lighting

FRAME_NUMBER = re.compile(r"-(\d+)_(?:jpe?g|png)\.rf\.[0-9a-f]+_(\d+)", re.IGNORECASE)


def clip_order(paths: list[Path]) -> list[Path]:
    """Frames of one clip in playing order: by the video frame number in the name, then by the
    export number (Roboflow exports some frames more than once)."""
    def key(path: Path):
        match = FRAME_NUMBER.search(Path(path).name)
        return (int(match[1]), int(match[2])) if match else (10 ** 9, 0)
    return sorted(paths, key=key)


def scene(rng: np.random.Generator, shape=FRAME) -> np.ndarray:
    """A blurred, unevenly lit background (float32 BGR), fixed for a whole clip."""
    height, width = shape
    blocks = rng.integers(60, 200, (6, 8, 3)).astype(np.uint8)
    background = cv2.resize(blocks, (width, height), interpolation=cv2.INTER_CUBIC)
    return background.astype(np.float32) * lighting(rng, shape, low=0.7)[:, :, None]


def clip_frames(paths: list[Path], seed: int = 0, shape=FRAME, height_fraction: float = 0.7,
                drift: float = 0.12) -> list[np.ndarray]:
    """BGR frames: each photo scaled so its longer side is ``height_fraction`` of the frame
    height, its centre moving on a slow ellipse of ``drift`` of the frame size."""
    rng = np.random.default_rng(seed)
    background = scene(rng, shape)
    height, width = shape
    side = int(height * height_fraction)
    frames = []
    for index, path in enumerate(paths):
        photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
        h, w = photo.shape[:2]
        fit = side / max(h, w)
        resized = cv2.resize(photo, (max(1, round(w * fit)), max(1, round(h * fit))),
                             interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
        phase = 2 * math.pi * index / max(1, len(paths))
        cx = width / 2 + drift * width * math.cos(phase)
        cy = height / 2 + drift * height * math.sin(phase)
        rh, rw = resized.shape[:2]
        top = int(np.clip(round(cy - rh / 2), 0, height - rh))
        left = int(np.clip(round(cx - rw / 2), 0, width - rw))
        canvas = background.copy()
        canvas[top:top + rh, left:left + rw] = resized
        frame = np.clip(canvas, 0, 255).astype(np.uint8)
        frames.append(camera_artifacts(frame, rng, noise=4.0, jpeg_quality=80))
    return frames


def photo_anywhere(photo: np.ndarray, rng: np.random.Generator, shape=FRAME,
                   sizes: tuple = (0.25, 0.75)) -> tuple[np.ndarray, tuple]:
    """A BGR photo pasted anywhere in a 640x480 scene, its height a random fraction (``sizes``)
    of the frame height, then noise and JPEG: a hand held up somewhere in front of a webcam.
    Returns the frame and the photo's (x, y, w, h) in it."""
    height, width = shape
    h, w = photo.shape[:2]
    fit = min(rng.uniform(*sizes) * height / h, width / w)
    resized = cv2.resize(photo, (max(1, round(w * fit)), max(1, round(h * fit))),
                         interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
    rh, rw = resized.shape[:2]
    top = int(rng.integers(0, height - rh + 1))
    left = int(rng.integers(0, width - rw + 1))
    canvas = scene(rng, shape)
    canvas[top:top + rh, left:left + rw] = resized
    frame = np.clip(canvas, 0, 255).astype(np.uint8)
    return camera_artifacts(frame, rng, noise=4.0, jpeg_quality=80), (left, top, rw, rh)
