"""Where the runner's frames meet the viewers: the newest frame only, and one JPEG encoder.

The runner calls :meth:`Hub.publish` once per frame, on its own thread. Publishing stores
references (no copy, no drawing, no encoding) and wakes whoever waits, so classification never
waits for a viewer. The :class:`Encoder` thread wakes at most ``fps`` times a second, takes
whatever frame is newest, draws the overlay if the runner did not, and encodes one JPEG, shared
by every viewer: three viewers cost the same encode as one, and with no viewer it encodes
nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from device.overlay import visualize


@dataclass(frozen=True)
class Snapshot:
    """One published frame. ``seq`` counts publishes; ``annotated`` is None when the runner
    did not draw (the encoder then draws, on its own thread)."""

    seq: int
    frame: np.ndarray
    annotated: np.ndarray | None
    record: dict
    fps: float
    inset: np.ndarray | None
    at: float


class Hub:
    """The newest frame and record; ``info`` describes the run (model, bundle, source)."""

    def __init__(self, info: dict | None = None,
                 inset_source: Callable[[], np.ndarray | None] | None = None):
        self.info = dict(info or {})
        self.started = time.monotonic()
        self.inset_source = inset_source
        self._changed = threading.Condition()
        self._latest: Snapshot | None = None
        self._seq = 0
        self.closed = False

    def publish(self, frame: np.ndarray, annotated: np.ndarray | None, record: dict,
                fps: float) -> None:
        """The runner's per-frame hook. The frame is kept by reference: the runner never
        draws on the frames its source hands out (the overlay draws on a copy)."""
        inset = self.inset_source() if self.inset_source is not None else None
        with self._changed:
            self._seq += 1
            self._latest = Snapshot(self._seq, frame, annotated, record, float(fps), inset,
                                    time.monotonic())
            self._changed.notify_all()

    def latest(self) -> Snapshot | None:
        return self._latest

    def wait_newer(self, seq: int, timeout: float) -> Snapshot | None:
        """The newest snapshot if it is newer than ``seq``, waiting up to ``timeout`` seconds;
        None on timeout or once the hub is closed and nothing newer came."""
        with self._changed:
            self._changed.wait_for(lambda: self.closed or (self._latest is not None
                                                           and self._latest.seq > seq),
                                   timeout)
            latest = self._latest
            return latest if latest is not None and latest.seq > seq else None

    def close(self) -> None:
        """The run ended: wake every waiter so streams can finish."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def uptime(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class Jpeg:
    seq: int          # the hub snapshot it shows
    data: bytes
    encoded: int      # how many JPEGs the encoder has made so far (this one included)


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    """Shrink to ``max_width`` keeping the aspect ratio (bounded JPEG size and encode time)."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    size = (max_width, max(1, round(height * max_width / width)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_bounded(image: np.ndarray, quality: int, max_bytes: int) -> bytes:
    """JPEG at ``quality``, stepping quality down while the picture is over ``max_bytes``
    (a noisy scene can be 3x a calm one at the same quality)."""
    while True:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        if data.size <= max_bytes or quality <= 30:
            return data.tobytes()
        quality -= 15


class Encoder(threading.Thread):
    """One thread, one JPEG per streamed frame, at most ``fps`` per second, only while someone
    watches. Viewers call :meth:`wait_jpeg` for anything newer than what they last sent."""

    def __init__(self, hub: Hub, fps: float = 15.0, quality: int = 70, max_width: int = 960,
                 max_bytes: int = 200_000, draw=visualize):
        super().__init__(name="serve-encoder", daemon=True)
        self.hub = hub
        self.interval = 1.0 / fps
        self.quality = quality
        self.max_width = max_width
        self.max_bytes = max_bytes
        self.draw = draw
        self._jpeg: Jpeg | None = None
        self._ready = threading.Condition()
        self._viewers = 0
        self._encoded = 0
        self._stop = threading.Event()

    # viewers -------------------------------------------------------------------------------
    def attach(self) -> None:
        with self._ready:
            self._viewers += 1
            self._ready.notify_all()

    def detach(self) -> None:
        with self._ready:
            self._viewers -= 1

    @property
    def viewers(self) -> int:
        return self._viewers

    @property
    def encoded(self) -> int:
        return self._encoded

    def wait_jpeg(self, after_seq: int, timeout: float) -> Jpeg | None:
        """The newest JPEG showing a frame newer than ``after_seq``; None on timeout/stop."""
        with self._ready:
            self._ready.wait_for(lambda: self._stop.is_set() or (
                self._jpeg is not None and self._jpeg.seq > after_seq), timeout)
            jpeg = self._jpeg
            return jpeg if jpeg is not None and jpeg.seq > after_seq else None

    # the thread ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify_all()

    def run(self) -> None:
        shown = 0
        while not self._stop.is_set():
            with self._ready:
                self._ready.wait_for(lambda: self._viewers > 0 or self._stop.is_set(), 1.0)
                if self._viewers == 0:
                    continue
            started = time.monotonic()
            snapshot = self.hub.wait_newer(shown, timeout=0.5)
            if snapshot is None:
                if self.hub.closed:
                    self._stop.wait(0.1)
                continue
            self._publish(snapshot, self._encode(snapshot))
            shown = snapshot.seq
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _encode(self, snapshot: Snapshot) -> bytes:
        picture = snapshot.annotated
        if picture is None:
            # The overlay shows the camera's rate where the source knows it (a video file's
            # nominal fps), else the rate frames arrive at.
            fps = self.hub.info.get("camera_fps") or snapshot.fps
            picture = self.draw(snapshot.frame, snapshot.record, fps, snapshot.inset)
        return encode_bounded(fit_width(picture, self.max_width), self.quality, self.max_bytes)

    def _publish(self, snapshot: Snapshot, data: bytes) -> None:
        with self._ready:
            self._encoded += 1
            self._jpeg = Jpeg(snapshot.seq, data, self._encoded)
            self._ready.notify_all()
