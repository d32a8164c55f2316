"""Frame sources behind one function: ``--source`` text -> an object with ``read`` / ``close``.

``read()`` returns ``(frame, name)`` (BGR uint8, and a file name for image folders) or None at
the end. Live sources (webcam, picamera2) capture on their own thread and hand out only the
newest frame, so a slow model never builds a backlog; files are read frame by frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from device.errors import UserError


class FrameSource(Protocol):
    live: bool
    name: str

    def read(self) -> tuple[np.ndarray, str] | None: ...

    def close(self) -> None: ...

    # Optional: ``problem() -> str | None`` says, after the last frame, what went wrong over the
    # run (skipped images, a video that ended early); the CLI then exits non-zero.


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpg", ".mjpeg"}


def open_source(source: str, width: int | None = None, height: int | None = None,
                fps: float | None = None) -> FrameSource:
    """Webcam index (``0``), ``picamera``, a video file or a folder of images."""
    text = str(source).strip()
    if not text:
        raise UserError("--source is empty: pass a camera index (0), picamera, a video file or "
                        "an image folder")
    if text.isascii() and text.isdigit():
        from device.sources.webcam import WebcamSource
        return WebcamSource(int(text), width, height, fps)
    if text.lower() in ("picamera", "picamera2", "csi"):
        from device.sources.picamera import PicameraSource
        return PicameraSource(width, height)
    path = Path(text).expanduser()
    if path.is_dir():
        from device.sources.folder import ImageFolderSource
        return ImageFolderSource(path)
    if path.is_file():
        from device.sources.folder import IMAGE_SUFFIXES, image_file_source
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return image_file_source(path)
        from device.sources.video import VideoFileSource
        return VideoFileSource(path)
    raise UserError(f"--source {text}: no such file or folder; use a camera index (0), "
                    "'picamera', a video file or a folder of images")
