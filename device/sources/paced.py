"""A video file played at its own frame rate, optionally looping: what ``serve`` shows people.

The runner reads a video file as fast as it can classify (right for ``run --headless`` and
benchmarks); a live view of a 10 s clip that ends after half a second shows nothing. Live
sources (cameras) are paced by the camera itself and are never wrapped.
"""

from __future__ import annotations

import time
from typing import Callable


class PacedSource:
    """Wraps a source: frame ``n`` is handed out no earlier than ``n / fps`` seconds after the
    first; when behind (slow classification), it never bursts to catch up. With ``reopen``,
    the end of the file starts it again."""

    live = False

    def __init__(self, source, fps: float | None, reopen: Callable[[], object] | None = None,
                 clock=time.monotonic, sleep=time.sleep):
        self.source = source
        self.name = source.name
        self.fps = getattr(source, "fps", 0.0) or 0.0
        self.interval = 1.0 / fps if fps else 0.0
        self._reopen = reopen
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    def read(self):
        item = self.source.read()
        if item is None and self._reopen is not None:
            self.source.close()
            self.source = self._reopen()
            item = self.source.read()
        if item is None or not self.interval:
            return item
        now = self._clock()
        if self._due is None or now - self._due > self.interval:
            self._due = now      # first frame, or behind: restart the schedule from here
        elif self._due > now:
            self._sleep(self._due - now)
        self._due += self.interval
        return item

    def problem(self) -> str | None:
        problem = getattr(self.source, "problem", None)
        return problem() if problem else None

    def close(self) -> None:
        self.source.close()
