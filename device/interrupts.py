"""SIGTERM handled like Ctrl-C, so ``finally`` blocks run and staging folders are removed.

Python's default SIGTERM action ends the process on the spot: no ``finally``, no cleanup, and a
``systemctl stop`` or a CI timeout leaves temporary folders forever. Inside
:func:`terminate_as_interrupt` a SIGTERM raises :class:`KeyboardInterrupt` in the main thread
instead, and the command's usual Ctrl-C path (one line, exit 130) takes over.

A KeyboardInterrupt raised in the middle of library code does not always come out as one:
TensorFlow, tracing a graph when the signal lands, can turn it into an error of its own while it
unwinds (measured: a SIGTERM during a SavedModel export left a two-part traceback and exit 1). So
the block remembers that a signal came, and any exception that leaves it afterwards is reported as
the KeyboardInterrupt it stands for. And where the signal lands in a destructor (measured:
TensorFlow's ``ConcreteFunctionGarbageCollector.__del__``), Python prints "Exception ignored"
with a traceback and carries on, so the export would finish as if nothing had been asked: there
the signal is delivered again a moment later, without the printout.

Library code can also swallow the KeyboardInterrupt outright (a bare ``except:``; measured: CI stop
29, a SIGINT during an export's first seconds, and the export went on to publish its bundle and
exit 0). So the irreversible steps (an export publishing its bundle, training saving its
model) first call :func:`raise_if_interrupted`, and a block that ends normally after a signal
raises KeyboardInterrupt all the same.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

_signals_seen: list[threading.Event] = []  # one per open block, innermost last


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if SIGINT or SIGTERM came within the open block, even though the
    library code it landed in swallowed it: the guard in front of every irreversible step."""
    if _signals_seen and _signals_seen[-1].is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and Ctrl-C raise KeyboardInterrupt, and any exception that
    leaves the block after one of them is raised as KeyboardInterrupt (main thread only; a no-op
    elsewhere). A SIGINT that the process ignores (a shell's background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = threading.Event()
    previous_hook = sys.unraisablehook
    timers: list[threading.Timer] = []

    def raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
        received.set()
        raise KeyboardInterrupt

    def redeliver_swallowed(unraisable):
        if received.is_set() and isinstance(unraisable.exc_value, KeyboardInterrupt):
            timers.append(threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGTERM)))
            timers[-1].start()
            return
        previous_hook(unraisable)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_interrupt)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, raise_interrupt)
    sys.unraisablehook = redeliver_swallowed
    _signals_seen.append(received)
    try:
        yield
        raise_if_interrupted()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if received.is_set():
            raise KeyboardInterrupt from exc
        raise
    finally:
        _signals_seen.remove(received)
        sys.unraisablehook = previous_hook
        for timer in timers:
            timer.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
