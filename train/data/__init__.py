"""Dataset loaders for the three tasks, reading each dataset's own public format.

Each loader returns a :class:`Dataset` of uint8 images already fitted to the model's size and
colour by ``device.preprocess.fit_image``: the same code the device runs on camera frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.errors import UserError


@dataclass
class Dataset:
    """Train and test splits as uint8 NHWC images with integer labels."""

    task: str
    labels: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)
    #: Per training image, the clip or session it came from (None: images are independent).
    groups_train: np.ndarray | None = None

    def counts(self) -> dict:
        """Images per class and split, for metrics.json and the README tables."""
        def per_class(y: np.ndarray) -> dict:
            return {label: int(np.sum(y == i)) for i, label in enumerate(self.labels)}
        return {"train": per_class(self.y_train), "test": per_class(self.y_test),
                "train_total": int(len(self.y_train)), "test_total": int(len(self.y_test))}


def resolve_data_dir(cli_value: str | None) -> Path | None:
    """``--data-dir`` wins, then the ``DATA_DIR`` environment variable; None when neither is set."""
    value = cli_value or os.environ.get("DATA_DIR")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        source = "--data-dir" if cli_value else "DATA_DIR"
        raise UserError(f"data directory {path} (from {source}) does not exist: "
                        "point it at the folder holding digits/, fruits/ or handsigns/")
    return path


def task_dir(data_dir: Path, task: str, looks_right) -> Path | None:
    """``data_dir/<task>`` if it holds the task's files, else ``data_dir`` itself if it does."""
    for candidate in (data_dir / task, data_dir):
        if candidate.is_dir() and looks_right(candidate):
            return candidate
    return None


def load_dataset(task: str, data_dir: Path | None, size: int, classes: list[str] | None = None,
                 embedded: bool = False) -> Dataset:
    """Load ``task`` from ``data_dir`` (or the embedded/download fallbacks) at ``size`` pixels."""
    from train.data import digits, fruits, handsigns

    if embedded:
        if task != "digits":
            raise UserError("--embedded is only for the digits task (scikit-learn's bundled digits)")
        return digits.load_embedded(size)
    loaders = {"digits": digits.load, "fruits": fruits.load, "handsigns": handsigns.load}
    if task == "digits" and classes:
        raise UserError("--classes is for fruits; digits always uses 0-9")
    return loaders[task](data_dir, size, classes)
