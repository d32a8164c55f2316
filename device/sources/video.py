"""A video file, read frame by frame (every frame is classified, in order).

Decoding runs on its own thread a few frames ahead (a bounded queue, nothing dropped): OpenCV
releases the GIL while decoding, so on a two-core machine decode and inference overlap instead
of adding up.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from device.errors import UserError

PREFETCH = 8
_END = object()


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
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH)
        self._queue.put(frame)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, daemon=True, name="decode")
        self._thread.start()

    def _decode(self) -> None:
        while not self._stop.is_set():
            ok, frame = self._capture.read()
            item = frame if ok and frame is not None else _END
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item is _END:
                return

    def read(self) -> tuple[np.ndarray, str] | None:
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # later reads keep seeing the end
            return None
        return item, self.name

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._capture.release()
