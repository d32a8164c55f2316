"""What every converter shares: the SavedModel, the calibration inputs, and cached conversions.

Keras 3 models convert through a SavedModel (``model.export``): ``TFLiteConverter`` reads it
directly and tf2onnx converts it (``tf2onnx.convert.from_keras`` fails on Keras 3 models).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.errors import UserError


@dataclass
class ExportContext:
    saved_model: Path
    workdir: Path
    calibration: np.ndarray | None
    int8_io: str = "int8"
    opset: int = 17
    _cache: dict = field(default_factory=dict)

    def require_calibration(self, key: str) -> np.ndarray:
        if self.calibration is None or len(self.calibration) == 0:
            raise UserError(f"{key} needs a calibration set: run `make calibration TASK=...`")
        return self.calibration

    def representative_dataset(self):
        """TFLite's calibration generator: one single-image batch at a time."""
        x = self.require_calibration("tflite-int8")

        def generate():
            for i in range(len(x)):
                yield [x[i:i + 1]]
        return generate

    def tflite_converter(self):
        import tensorflow as tf

        return tf.lite.TFLiteConverter.from_saved_model(str(self.saved_model))

    def onnx_fp32(self) -> Path:
        """The float ONNX model, converted once and shared by the ONNX formats that start from it."""
        if "onnx_fp32" not in self._cache:
            path = self.workdir / "model_fp32.onnx"
            command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model",
                       str(self.saved_model), "--output", str(path), "--opset", str(self.opset),
                       "--tag", "serve", "--signature_def", "serving_default"]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0 or not path.is_file():
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise RuntimeError("tf2onnx failed: " + " | ".join(tail))
            self._cache["onnx_fp32"] = path
        return self._cache["onnx_fp32"]


class CalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` over the calibration inputs, one image per call."""

    def __init__(self, inputs: np.ndarray, input_name: str):
        self.inputs = inputs
        self.input_name = input_name
        self.position = 0

    def get_next(self):
        if self.position >= len(self.inputs):
            return None
        batch = self.inputs[self.position:self.position + 1]
        self.position += 1
        return {self.input_name: batch}

    def rewind(self):
        self.position = 0

    # onnxruntime's qdq_loss_debug iterates the reader, as its CalibrationDataReader base allows.
    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item
