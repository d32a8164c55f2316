"""Shared fixtures: where the real datasets are, and small real models built once per content.

Models are trained and exported by the fixtures themselves (never taken from a developer's
``artifacts/``) and cached under ``.cache/test-artifacts/<hash>``. The hash covers the project's
source and the recipe, so a second run reuses them and any code change retrains.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "test-artifacts"
SOURCE_PACKAGES = ("device", "train", "export", "calibration_data")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shared_datasets() -> Path | None:
    """$DATA_DIR, else ../shared/datasets beside the checkout; None when neither exists."""
    for candidate in (os.environ.get("DATA_DIR"), REPO.parent / "shared" / "datasets"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = shared_datasets()
    if found is None:
        pytest.skip("real datasets not found: set DATA_DIR or put them in ../shared/datasets")
    return found


def source_hash(*parts: str) -> str:
    """SHA-256 over the project's Python sources plus ``parts`` (the recipe)."""
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()[:16]


#: Small but real recipes: enough to beat chance widely in a couple of minutes on 2 cores.
QUICK_RECIPES = {
    "digits": {"limit_per_class": 2000, "epochs": 3, "image_size": 28},
    "fruits": {"limit_per_class": 80, "epochs": 6, "image_size": 32},
    "handsigns": {"limit_per_class": 200, "epochs": 6, "image_size": 48},
}


def build_artifacts(task: str, data_dir: Path, recipe: dict, export_formats=None) -> Path:
    """Train + export ``task`` with ``recipe`` into a cached artifacts root; return the root."""
    key = source_hash(task, repr(sorted(recipe.items())), repr(export_formats))
    root = CACHE / f"{task}-{key}"
    if (root / task / "bundle" / "metadata.json").is_file():
        return root
    from export.exporter import export
    from train.trainer import TrainConfig, train

    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{task}-", dir=CACHE))
    try:
        train(TrainConfig(task=task, data_dir=data_dir, out_dir=staging, verbose=0, **recipe))
        export(task, staging, export_formats, calibration_count=200, latency_runs=5,
               calibration_dir=staging / "calibration")
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def quick_artifacts(data_dir):
    """``quick_artifacts(task)`` -> artifacts root with a small real model and its bundle."""
    built: dict[str, Path] = {}

    def get(task: str) -> Path:
        if task not in built:
            built[task] = build_artifacts(task, data_dir, QUICK_RECIPES[task])
        return built[task]
    return get
