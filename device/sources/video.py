"""A video file, read frame by frame (every frame is classified, in order).

Decoding runs on its own thread a few frames ahead (a bounded queue, nothing dropped): OpenCV
releases the GIL while decoding, so on a two-core machine decode and inference overlap instead
of adding up. The thread starts with the first ``read()``, not when the file is opened: a
start-up error raised between the two (a bad ``--roi``, a model that does not load) must not
leave a decoder thread inside OpenCV when the interpreter exits (that aborts the process with
``FATAL: exception not rethrown``).

A file whose frames stop before the count its header promises (truncated while copied, a
damaged disk) is reported by :meth:`VideoFileSource.problem`, so the run does not end as if
the whole video had been seen.
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
#: Containers estimate their frame count from duration x rate for some codecs; a shortfall this
#: small is rounding, not a truncated file.
COUNT_SLACK_FRACTION = 0.01
COUNT_SLACK_FRAMES = 2


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
        self.expected_frames = max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.frames_read = 0
        self.reached_end = False
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH)
        self._queue.put(frame)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        if self._thread is None:
            self._thread = threading.Thread(target=self._decode, daemon=True, name="decode")
            self._thread.start()
        item = self._queue.get()
        if item is _END:
            self.reached_end = True
            self._queue.put(_END)  # later reads keep seeing the end
            return None
        self.frames_read += 1
        return item, self.name

    def problem(self) -> str | None:
        """A video that ended before its header's frame count: truncated or damaged."""
        if not self.reached_end or not self.expected_frames:
            return None
        slack = max(COUNT_SLACK_FRAMES, int(COUNT_SLACK_FRACTION * self.expected_frames))
        if self.frames_read >= self.expected_frames - slack:
            return None
        return (f"video {self.path} ended after {self.frames_read} of its "
                f"{self.expected_frames} frames: the file is truncated or damaged (re-copy it)")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._capture.release()
