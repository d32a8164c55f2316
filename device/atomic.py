"""Atomic file writes: a temp file in the destination's folder, then ``os.replace``.

A crash or Ctrl-C mid-write leaves the previous file untouched, never half a model. The temp
file sits in the same folder so the final rename never crosses a filesystem.

``tempfile.mkstemp``/``mkdtemp`` create 0600 files and 0700 folders whatever the umask: right
for secrets, wrong for a bundle a system service account must read. Everything made here is
given the mode an ordinary ``open``/``mkdir`` would have had (0666/0777 minus the umask).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the mode ``open``/``mkdir`` would have given it under the current umask."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~current_umask())


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """``mkdtemp`` in ``parent`` with an ordinary (umask-respecting) mode, for staging folders
    that are renamed into place and must stay readable by other users afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    ordinary_mode(path)
    return path


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
        if tmp_path.exists():  # a writer may have replaced the file: set the mode on what is there
            ordinary_mode(tmp_path)
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


def owned_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A temp folder named ``<prefix><pid>-<random>``: the pid lets a later run tell a folder
    left behind by a killed process (``kill -9`` runs no cleanup) from one still in use."""
    return make_temp_dir(parent, f"{prefix}{os.getpid()}-")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove ``parent/<prefix><pid>-*`` folders whose process is gone; return what went."""
    import shutil

    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for path in parent.glob(f"{prefix}*"):
        owner = path.name[len(prefix):].split("-", 1)[0]
        if not owner.isdigit() or pid_alive(int(owner)) or not path.is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
