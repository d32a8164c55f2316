"""``python -m device check``: the on-device self-test after a deploy.

Verifies every checksum, loads every model with the device's runtime, classifies the bundle's
own sample images and compares the accuracy with what export measured for the same images.
Exit status 0 only if all of that holds: the deploy uses it to decide whether to switch over.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from device.backends import load_classifier
from device.bundle import open_bundle, sha256_of
from device.errors import UserError
from device.preprocess import to_input

#: Allowed gap between on-device and export-time sample accuracy (another CPU or runtime
#: version may round a borderline image differently; a broken model misses by far more).
TOLERANCE = 0.05


def load_samples(bundle) -> tuple[np.ndarray, np.ndarray]:
    info = bundle.metadata.get("samples")
    if not info:
        raise UserError(f"bundle {bundle.root} has no sample set: re-export it")
    path = bundle.root / info["file"]
    if not path.is_file() or sha256_of(path) != info["sha256"]:
        raise UserError(f"sample set {path} is missing or its checksum does not match: re-copy "
                        "or re-export the bundle")
    with np.load(path) as archive:
        return to_input(archive["x"], bundle.preprocessing), archive["y"]


def check(bundle_dir: Path, threads: int = 1, runs: int = 20) -> tuple[list[dict], bool]:
    """One row per model: loads, sample accuracy vs export, latency. Returns (rows, all_ok)."""
    bundle = open_bundle(bundle_dir)  # raises on any checksum mismatch
    x, y = load_samples(bundle)
    rows, all_ok = [], True
    for key, entry in bundle.models.items():
        row = {"model": key, "backend": "", "status": "ok"}
        try:
            classifier = load_classifier(bundle.model_path(key), entry["format"], threads)
            row["backend"] = classifier.backend
            accuracy = float(np.mean(classifier.predict(x).argmax(1) == y))
            times = []
            for i in range(runs):
                started = time.perf_counter()
                classifier.predict(x[i % len(x)][None])
                times.append((time.perf_counter() - started) * 1000)
            row.update(accuracy=accuracy, expected=entry.get("sample_accuracy"),
                       median_ms=float(np.median(times)))
            expected = entry.get("sample_accuracy")
            if expected is not None and accuracy < expected - TOLERANCE:
                row["status"] = f"FAIL: accuracy {accuracy:.3f} < export's {expected:.3f}"
        except UserError as exc:
            row["status"] = f"FAIL: {exc}"
        except Exception as exc:  # noqa: BLE001 - a model that crashes the runtime fails the check
            row["status"] = f"FAIL: {type(exc).__name__}: {exc}"
        all_ok &= row["status"] == "ok"
        rows.append(row)
    return rows, all_ok


def format_table(rows: list[dict], task: str, samples: int) -> str:
    lines = [f"device check: {task}, {samples} sample images",
             f"{'model':<16}{'backend':<16}{'accuracy':>9}{'export':>9}{'median ms':>11}  status"]
    for row in rows:
        accuracy = f"{row['accuracy']:.3f}" if "accuracy" in row else "-"
        expected = f"{row['expected']:.3f}" if row.get("expected") is not None else "-"
        latency = f"{row['median_ms']:.3f}" if "median_ms" in row else "-"
        lines.append(f"{row['model']:<16}{row['backend']:<16}{accuracy:>9}{expected:>9}"
                     f"{latency:>11}  {row['status']}")
    return "\n".join(lines)


def main(bundle_dir: Path, threads: int, as_json: bool) -> int:
    rows, ok = check(bundle_dir, threads)
    bundle = open_bundle(bundle_dir, verify=False)
    if as_json:
        print(json.dumps({"ok": ok, "task": bundle.task, "models": rows}))
    else:
        print(format_table(rows, bundle.task, bundle.metadata["samples"]["count"]))
        print("check: ok" if ok else "check: FAILED")
    return 0 if ok else 1
