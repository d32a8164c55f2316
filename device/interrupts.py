"""SIGTERM handled like Ctrl-C, so ``finally`` blocks run and staging folders are removed.

Python's default SIGTERM action ends the process on the spot: no ``finally``, no cleanup, and a
``systemctl stop`` or a CI timeout leaves temporary folders forever. Inside
:func:`terminate_as_interrupt` a SIGTERM raises :class:`KeyboardInterrupt` in the main thread
instead, and the command's usual Ctrl-C path (one line, exit 130) takes over.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
