"""A USB webcam through OpenCV (V4L2 on Linux), reconnecting with backoff if it drops out."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from device.errors import UserError
from device.sources.latest import LatestFrame

BACKOFF_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The footage ``make demo`` writes (``python -m device footage``): what to play without a camera.
DEMO_VIDEO = "artifacts/demo/footage.avi"


def default_opener(index: int):
    if sys.platform.startswith("linux"):
        if not Path(f"/dev/video{index}").exists():
            return None     # OpenCV would only add two WARN lines to the one error
        return cv2.VideoCapture(index, cv2.CAP_V4L2)
    return cv2.VideoCapture(index, cv2.CAP_ANY)


class WebcamSource:
    live = True

    def __init__(self, index: int, width: int | None = None, height: int | None = None,
                 fps: float | None = None, opener: Callable = default_opener,
                 backoff: tuple[float, ...] = BACKOFF_SECONDS, sleep=time.sleep):
        self.index = index
        self.name = f"camera{index}"
        self._settings = (width, height, fps)
        self._opener = opener
        self._backoff = backoff
        self._sleep = sleep
        self._capture = self._open()
        if self._capture is None:
            raise UserError(f"no camera at index {index}: check `ls /dev/video*`, the cable "
                            "and that no other program uses it; without a camera, play a video: "
                            f"--source {DEMO_VIDEO} (make demo writes it) or any .mp4")
        self._latest = LatestFrame(self._grab)

    def _open(self):
        capture = self._opener(self.index)
        if capture is None or not capture.isOpened():
            return None
        width, height, fps = self._settings
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            capture.set(cv2.CAP_PROP_FPS, fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        return capture

    def _grab(self) -> np.ndarray:
        ok, frame = self._capture.read()
        if ok and frame is not None:
            return frame
        return self._reconnect()

    def _reconnect(self) -> np.ndarray:
        """The camera stopped delivering: reopen it with growing pauses, then give up clearly."""
        self._capture.release()
        for pause in self._backoff:
            print(f"camera {self.index}: no frame, reconnecting in {pause:.2f} s",
                  file=sys.stderr, flush=True)
            self._sleep(pause)
            capture = self._open()
            if capture is not None:
                ok, frame = capture.read()
                if ok and frame is not None:
                    self._capture = capture
                    return frame
                capture.release()
        raise UserError(f"camera {self.index} stopped delivering frames and did not come back "
                        f"after {len(self._backoff)} reconnect attempts: check the cable")

    def read(self) -> tuple[np.ndarray, str]:
        return self._latest.get(), self.name

    def close(self) -> None:
        self._latest.stop()
        self._capture.release()
