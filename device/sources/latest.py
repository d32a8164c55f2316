"""A capture thread that keeps only the newest frame (live sources)."""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from device.errors import UserError


class LatestFrame:
    """Runs ``grab()`` on a daemon thread; ``get()`` returns the newest frame not yet handed out.

    ``grab`` returns a frame, or raises :class:`UserError` when the source is gone for good; the
    error is re-raised in the caller's thread. ``get`` never waits longer than ``timeout``.
    """

    def __init__(self, grab: Callable[[], np.ndarray], timeout: float = 10.0):
        self._grab = grab
        self._timeout = timeout
        self._frame: np.ndarray | None = None
        self._count = 0
        self._seen = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="capture")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._grab()
            except BaseException as exc:  # noqa: BLE001 - handed to the reader's thread
                with self._ready:
                    self._error = exc
                    self._ready.notify_all()
                return
            with self._ready:
                self._frame = frame
                self._count += 1
                self._ready.notify_all()

    def get(self) -> np.ndarray:
        deadline = time.monotonic() + self._timeout
        with self._ready:
            while self._count == self._seen and self._error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UserError(f"no frame from the camera for {self._timeout:.0f} s: check "
                                    "the cable and that no other program holds the camera")
                self._ready.wait(remaining)
            if self._count == self._seen and self._error is not None:
                raise self._error
            self._seen = self._count
            return self._frame

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
