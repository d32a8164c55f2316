"""ONNX models through onnxruntime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.errors import UserError


def open_session(path: Path, threads: int):
    """An InferenceSession on the CPU provider with ``threads`` intra-op threads."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("onnxruntime is not installed: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private types
        raise UserError(f"cannot load ONNX model {path} ({type(exc).__name__}): the file is "
                        "corrupt, re-export the bundle") from None


class OnnxClassifier:
    """One InferenceSession with a fixed intra-op thread count (set before the session exists)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1):
        self.session = open_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]


ONNX_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8",
              "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64"}


class OnnxModel:
    """An ONNX model with several inputs/outputs; outputs sorted by name like the TFLite one."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1):
        from device.backends import output_order

        self.session = open_session(path, threads)
        self.inputs = [_describe(node) for node in self.session.get_inputs()]
        outputs = [_describe(node) for node in self.session.get_outputs()]
        self.outputs = [outputs[i] for i in output_order([o["name"] for o in outputs])]
        self._output_names = [o["name"] for o in self.outputs]

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        feed = {spec["name"]: array.astype(spec["dtype"])
                for spec, array in zip(self.inputs, arrays)}
        return [out.astype(np.float32) for out in self.session.run(self._output_names, feed)]


def _describe(node) -> dict:
    shape = [dim if isinstance(dim, int) else 1 for dim in node.shape]
    return {"name": node.name, "shape": shape, "dtype": ONNX_TYPES.get(node.type, "float32")}
