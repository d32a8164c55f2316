"""Atomic file writes: a temp file in the destination's folder, then ``os.replace``.

A crash or Ctrl-C mid-write leaves the previous file untouched, never half a model. The temp
file sits in the same folder so the final rename never crosses a filesystem.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to ``destination``; move it into place only if the block succeeds.

    Use it for writers that insist on a path (Keras ``model.save``, ``plt.savefig``). ``suffix``
    keeps an extension some writers check (``.keras``, ``.png``).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=suffix or ".tmp",
                               dir=destination.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, destination)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(destination: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``destination`` atomically (fsync before the rename)."""
    with atomic_path(destination) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def write_text(destination: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``destination`` atomically."""
    write_bytes(destination, text.encode("utf-8"))


def write_json(destination: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON atomically."""
    write_text(destination, json.dumps(payload, indent=2, sort_keys=False) + "\n")
