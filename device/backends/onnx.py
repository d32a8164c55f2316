"""ONNX models through onnxruntime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.errors import UserError


class OnnxClassifier:
    """One InferenceSession with a fixed intra-op thread count (set before the session exists)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("onnxruntime is not installed: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private types
            raise UserError(f"cannot load ONNX model {path} ({type(exc).__name__}): the file is "
                            "corrupt, re-export the bundle") from None
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]
