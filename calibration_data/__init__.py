"""Calibration sets: a class-balanced, seeded sample of the *training* split, already turned into
model input by the device's own preprocessing, for every int8 format (TFLite's
``representative_dataset`` and onnxruntime's ``CalibrationDataReader`` both read it).

The set belongs to its model: it lives beside it (``artifacts/<task>/calibration/<task>.npz``,
with ``<task>.json`` as its manifest: counts per class, seed, SHA-256) and is keyed by the
training data it was drawn from (source and a content hash, :func:`data_key`). A set drawn from
other data (scikit-learn's 8x8 digits for the demo, MNIST for the real model) is never reused:
:func:`load` refuses it and the exporter rebuilds it. Both files are generated, never committed.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from device.atomic import atomic_path, write_json
from device.bundle import sha256_of
from device.errors import UserError
from device.preprocess import to_input

HERE = Path(__file__).resolve().parent


def folder_for(artifacts_task_folder: Path) -> Path:
    """Where a model's calibration set lives: beside the model, in its artifacts folder."""
    return Path(artifacts_task_folder) / "calibration"


def data_key(x_train: np.ndarray, y_train: np.ndarray, source: str) -> dict:
    """What identifies the training data a set is drawn from: its source and a content hash
    (the fitted images and labels), so the same folder re-read gives the same key and any
    other data, even under the same labels and image size, gives another."""
    digest = hashlib.sha256()
    digest.update(repr((x_train.shape, str(x_train.dtype))).encode())
    digest.update(np.ascontiguousarray(x_train).tobytes())
    digest.update(np.ascontiguousarray(y_train).astype(np.int64).tobytes())
    return {"source": str(source), "sha256": digest.hexdigest()}
MINIMUM = 10
RECOMMENDED = 100


def balanced_indices(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` indices spread as evenly as the classes allow, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    pools = {c: rng.permutation(np.flatnonzero(y == c)) for c in classes}
    quota = {c: count // len(classes) for c in classes}
    for c in classes[: count % len(classes)]:
        quota[c] += 1
    # A class with too few images gives its remainder to the others, in turn.
    chosen = {c: pools[c][:quota[c]] for c in classes}
    short = count - sum(len(v) for v in chosen.values())
    while short > 0:
        grew = False
        for c in classes:
            if short and len(chosen[c]) < len(pools[c]):
                chosen[c] = pools[c][:len(chosen[c]) + 1]
                short -= 1
                grew = True
        if not grew:
            break
    return np.sort(np.concatenate(list(chosen.values())))


def build(task: str, x_train: np.ndarray, y_train: np.ndarray, labels: list[str], spec: dict,
          source: str, count: int = 500, seed: int = 0, out_dir: Path = HERE) -> Path:
    """Write ``<out_dir>/<task>.npz`` and its manifest; return the npz path."""
    if count < MINIMUM:
        raise UserError(f"--count {count} is too small for calibration: use at least {MINIMUM} "
                        f"(recommended {RECOMMENDED}+)")
    if count < RECOMMENDED:
        print(f"warning: {count} calibration images is fewer than the recommended "
              f"{RECOMMENDED}; int8 accuracy may suffer", file=sys.stderr)
    index = balanced_indices(y_train, min(count, len(y_train)), seed)
    x = to_input(x_train[index], spec)
    y = y_train[index]
    destination = Path(out_dir) / f"{task}.npz"
    with atomic_path(destination, suffix=".npz") as tmp:
        np.savez(tmp, x=x, y=y)
    manifest = {
        "task": task, "count": int(len(y)), "seed": seed, "source": source,
        "split": "train", "labels": labels,
        "per_class": {label: int(np.sum(y == i)) for i, label in enumerate(labels)},
        "preprocessing": spec, "sha256": sha256_of(destination),
        "data": data_key(x_train, y_train, source),
    }
    write_json(destination.with_suffix(".json"), manifest)
    return destination


def load(task: str, spec: dict, labels: list[str], out_dir: Path = HERE,
         data: dict | None = None):
    """(x, y, manifest) of a built set, refusing one whose checksum, labels or preprocessing
    no longer match the model being exported (it would calibrate the wrong input), or, given
    ``data`` (a :func:`data_key`), one drawn from other training data."""
    import json

    npz = Path(out_dir) / f"{task}.npz"
    manifest_path = npz.with_suffix(".json")
    if not npz.is_file() or not manifest_path.is_file():
        raise UserError(f"no calibration set {npz}: run `make calibration TASK={task}`")
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{manifest_path} is not a valid manifest ({exc}): rebuild it with "
                        f"`make calibration TASK={task}`") from None
    if data is not None and manifest.get("data") != data:
        built = (manifest.get("data") or {}).get("source", "unrecorded data")
        raise UserError(f"{npz} was drawn from other training data ({built}) than this model's "
                        f"({data['source']})")
    if sha256_of(npz) != manifest.get("sha256"):
        raise UserError(f"{npz} does not match its manifest checksum: rebuild it with "
                        f"`make calibration TASK={task}`")
    if manifest.get("preprocessing") != spec or manifest.get("labels") != labels:
        raise UserError(f"{npz} was built for other labels or preprocessing than this model: "
                        f"rebuild it with `make calibration TASK={task}`")
    with np.load(npz) as archive:
        return archive["x"], archive["y"], manifest
