"""A video file, read frame by frame (every frame is classified, in order)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.errors import UserError


class VideoFileSource:
    live = False

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.name
        self._capture = cv2.VideoCapture(str(self.path))
        ok, frame = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok or frame is None:
            self._capture.release()
            raise UserError(f"cannot read video {self.path}: the file is not a video OpenCV can "
                            "decode (try re-encoding it as MJPG .avi or H.264 .mp4)")
        self._first: np.ndarray | None = frame
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 0.0

    def read(self) -> tuple[np.ndarray, str] | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame, self.name
        ok, frame = self._capture.read()
        return (frame, self.name) if ok and frame is not None else None

    def close(self) -> None:
        self._capture.release()
