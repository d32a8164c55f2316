"""What export starts from: ``artifacts/<task>/model.keras`` + ``metrics.json``, and the same
dataset the model was trained on (its test split for the report, its train split for calibration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from device.errors import UserError
from device.tasks import get_task


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
        import keras

        import train.models  # noqa: F401 - registers the custom layers a saved model may use

        try:
            return keras.models.load_model(self.model_path, compile=False)
        except Exception as exc:  # noqa: BLE001 - corrupt zip, wrong Keras version, ...
            raise UserError(f"cannot load {self.model_path} ({type(exc).__name__}): retrain with "
                            f"`make train TASK={self.task}`") from None


def load_trained(artifacts: Path, task: str) -> Trained:
    get_task(task)
    folder = Path(artifacts) / task
    metrics_path = folder / "metrics.json"
    if not (folder / "model.keras").is_file() or not metrics_path.is_file():
        raise UserError(f"no trained model in {folder}: run `make train TASK={task}` first")
    return Trained(task, folder, json.loads(metrics_path.read_text()))


def training_data(trained: Trained, data_dir: str | None = None):
    """The dataset the model was trained on, read the same way (data dir, classes, size)."""
    from train.data import load_dataset, resolve_data_dir

    config = trained.metrics.get("config", {})
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
