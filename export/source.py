"""What export starts from: ``artifacts/<task>/model.keras`` + ``metrics.json``, and the same
dataset the model was trained on (its test split for the report, its train split for calibration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from device.errors import UserError
from device.tasks import TASKS, check_task_name


@dataclass
class Trained:
    task: str
    folder: Path
    metrics: dict

    @property
    def model_path(self) -> Path:
        return self.folder / "model.keras"

    @property
    def spec(self) -> dict:
        return self.metrics["preprocessing"]

    @property
    def labels(self) -> list[str]:
        return self.metrics["labels"]

    def load_model(self):
        from train.models import load_saved_model

        try:
            return load_saved_model(self.model_path)
        except Exception as exc:  # noqa: BLE001 - corrupt zip, wrong Keras version, ...
            raise UserError(f"cannot load {self.model_path} ({type(exc).__name__}): retrain with "
                            f"`make train TASK={self.task}`") from None


def load_trained(artifacts: Path, task: str) -> Trained:
    if task not in TASKS:
        check_task_name(task)  # a user's task: any safe name with a trained model
    folder = Path(artifacts) / task
    metrics_path = folder / "metrics.json"
    if not (folder / "model.keras").is_file() or not metrics_path.is_file():
        how = (f"make train TASK={task}" if task in TASKS
               else f"python -m train images --data DIR --name {task}")
        raise UserError(f"no trained model in {folder}: run `{how}` first")
    return Trained(task, folder, read_metrics(metrics_path, task))


def read_metrics(path: Path, task: str) -> dict:
    """``metrics.json`` as a dict with the fields export needs, or one clear line saying what is
    wrong with it (a truncated write, a hand edit) and how to get a good one back."""
    retrain = (f"retrain with `make train TASK={task}`" if task in TASKS
               else f"retrain with `python -m train images --data DIR --name {task}`")
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}): {retrain}") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{path} is not a JSON object: {retrain}")
    labels, spec = metrics.get("labels"), metrics.get("preprocessing")
    if not isinstance(labels, list) or len(labels) < 2 or \
            not all(isinstance(label, str) for label in labels):
        raise UserError(f"{path}: 'labels' is missing or not a list of at least two class "
                        f"names: {retrain}")
    if not isinstance(spec, dict) or not isinstance(spec.get("size"), list):
        raise UserError(f"{path}: 'preprocessing' is missing or has no 'size': {retrain}")
    test = metrics.get("test")
    if not isinstance(test, dict) or not all(isinstance(test.get(k), (int, float))
                                             for k in ("accuracy", "loss")):
        raise UserError(f"{path}: 'test' results are missing: {retrain}")
    return metrics


def training_data(trained: Trained, data_dir: str | None = None):
    """The dataset the model was trained on, read the same way (data dir, classes, size)."""
    from train.data import load_dataset, resolve_data_dir

    config = trained.metrics.get("config", {})
    images = (config.get("extra") or {}).get("images")
    if images:
        return user_folders(trained, images, data_dir, config.get("seed", 42))
    embedded = bool(config.get("embedded"))
    folder = None
    if not embedded:
        folder = resolve_data_dir(data_dir) or (Path(config["data_dir"])
                                                if config.get("data_dir") else None)
    data = load_dataset(trained.task, folder, trained.spec["size"][0], config.get("classes"),
                        embedded)
    if data.labels != trained.labels:
        raise UserError(f"the dataset's classes {data.labels} differ from the model's "
                        f"{trained.labels}: pass the --data-dir the model was trained on")
    return data


def user_folders(trained: Trained, recorded: dict, data_dir: str | None, seed: int):
    """A user's task (``python -m train images``): its folders read and split exactly as in
    training (same test fraction and seed), or from ``--data-dir`` if they moved."""
    from train.data import folders

    folder = Path(data_dir).expanduser() if data_dir else Path(recorded["folder"])
    data = folders.load(folder, trained.task, trained.spec["size"][0], recorded.get("colour", "rgb"),
                        recorded.get("test_split", folders.DEFAULT_TEST_FRACTION), seed,
                        quiet=True)
    if data.labels != trained.labels:
        raise UserError(f"the classes in {folder} {data.labels} differ from the model's "
                        f"{trained.labels}: pass --data-dir with the folder it was trained on")
    return data
