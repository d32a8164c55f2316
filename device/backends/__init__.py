"""Inference backends behind one table: a bundle's model file -> an object with ``predict``.

Every backend takes the float32 model input from ``device.preprocess`` and returns float32
class probabilities, quantising and dequantising itself when the model has integer I/O. Only
the backend a model needs is imported, so the device never pulls in more than it uses.
"""

from __future__ import annotations

import re
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


class Model(Protocol):
    """A raw model with any number of inputs and outputs (the hand pipeline's stages).

    ``inputs`` / ``outputs``: one dict per tensor, ``{"name", "shape", "dtype"}``, in the order
    ``run`` takes and returns them; outputs are sorted by name (``Identity``, ``Identity_1``,
    ...), which is the same for a ``.tflite`` file and its tf2onnx conversion.
    """

    backend: str
    inputs: list[dict]
    outputs: list[dict]

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """float32 inputs in ``inputs`` order -> float32 outputs in ``outputs`` order."""


def load_model(path: str | Path, model_format: str, threads: int = 1) -> Model:
    """Open a multi-input/multi-output model with the backend for ``model_format``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} is missing: re-export the bundle or fetch the "
                        "hand models")
    if model_format == "tflite":
        from device.backends.litert import LiteRTModel
        return LiteRTModel(path, threads)
    if model_format == "onnx":
        from device.backends.onnx import OnnxModel
        return OnnxModel(path, threads)
    raise UserError(f"unknown model format {model_format!r} for {path}: expected tflite or onnx")


def output_order(names: list[str]) -> list[int]:
    """Indices that sort tensor names naturally: ``Identity`` < ``Identity_1`` < ``Identity_10``."""
    def key(index: int):
        return [int(part) if part.isdigit() else part
                for part in re.split(r"(\d+)", names[index])]
    return sorted(range(len(names)), key=key)
