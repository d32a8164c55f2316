"""Inference backends behind one table: a bundle's model file -> an object with ``predict``.

Every backend takes the float32 model input from ``device.preprocess`` and returns float32
class probabilities, quantising and dequantising itself when the model has integer I/O. Only
the backend a model needs is imported, so the device never pulls in more than it uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from device.errors import UserError


class Classifier(Protocol):
    """What the runner, the checks and the benchmarks need from a loaded model."""

    backend: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, H, W, C) model input -> float32 (N, classes) probabilities."""


def load_classifier(path: str | Path, model_format: str, threads: int = 1) -> Classifier:
    """Open ``path`` with the backend for ``model_format`` (``tflite`` or ``onnx``).

    ``threads`` is given when the interpreter/session is built: XNNPACK ignores a later change.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} is missing: re-export the bundle")
    if model_format == "tflite":
        from device.backends.litert import LiteRTClassifier
        return LiteRTClassifier(path, threads)
    if model_format == "onnx":
        from device.backends.onnx import OnnxClassifier
        return OnnxClassifier(path, threads)
    raise UserError(f"unknown model format {model_format!r} for {path}: expected tflite or onnx")
