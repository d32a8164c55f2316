"""Fetching a dataset archive through its usual public route, cached by Keras.

Only used when no local copy exists. Offline, the failure becomes one line that says where to
put the files instead.
"""

from __future__ import annotations

from pathlib import Path

from device.errors import UserError


def fetch_archive(url: str, name: str, where_to_put: str) -> Path:
    """Download and extract ``url`` into ``~/.keras/datasets/<name>``; return the extracted root."""
    import keras

    try:
        path = keras.utils.get_file(fname=name, origin=url, extract=True)
    except Exception as exc:  # noqa: BLE001 - any network failure means the same to the user
        raise UserError(f"no local {name} dataset and the download from {url} failed "
                        f"({type(exc).__name__}): {where_to_put}") from None
    return Path(path)
