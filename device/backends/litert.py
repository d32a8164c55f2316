"""TFLite models through LiteRT, falling back to tflite_runtime, then TensorFlow's own copy.

``ai_edge_litert`` is the maintained runtime and works with numpy 2; ``tflite_runtime`` 2.14 only
loads under numpy < 2 (older Pi OS images); ``tensorflow.lite`` is the last resort on a machine
that happens to have full TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.errors import UserError


def interpreter_class():
    """(Interpreter class, backend name) of the first runtime that imports."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf
        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise UserError("no TFLite runtime installed: pip install ai-edge-litert "
                        "(or tflite-runtime where numpy < 2)") from None


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """float -> the tensor's integer type with its scale/zero-point (saturating)."""
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(detail["dtype"])


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


class LiteRTClassifier:
    """One TFLite interpreter, built once with its thread count; batch size adapts on demand."""

    def __init__(self, path: Path, threads: int = 1):
        interpreter_type, self.backend = interpreter_class()
        try:
            self.interpreter = interpreter_type(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"cannot load TFLite model {path} ({exc}): the file is corrupt or "
                            "from an incompatible converter, re-export the bundle") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        self.integer_input = self.input["dtype"] in (np.int8, np.uint8)
        self.integer_output = self.output["dtype"] in (np.int8, np.uint8)

    def _ensure_batch(self, batch: int) -> None:
        if batch != self.batch:
            shape = list(self.input["shape"])
            shape[0] = batch
            self.interpreter.resize_tensor_input(self.input["index"], shape)
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self.batch = batch

    def set_input(self, batch: np.ndarray) -> None:
        self._ensure_batch(len(batch))
        tensor = quantize(batch, self.input) if self.integer_input else batch.astype(np.float32)
        self.interpreter.set_tensor(self.input["index"], tensor)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.set_input(batch)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        return dequantize(out, self.output) if self.integer_output else out.astype(np.float32)


class LiteRTModel:
    """A TFLite model with several inputs/outputs: floats in, floats out, (de)quantising any
    integer tensor with its own scale so a quantised stage is a drop-in replacement."""

    def __init__(self, path: Path, threads: int = 1):
        from device.backends import output_order

        interpreter_type, self.backend = interpreter_class()
        try:
            self.interpreter = interpreter_type(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"cannot load TFLite model {path} ({exc}): the file is corrupt or "
                            "from an incompatible converter, re-fetch or re-export it") from None
        self._in = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        self._out = [outputs[i] for i in output_order([d["name"] for d in outputs])]
        self.inputs = [_describe(d) for d in self._in]
        self.outputs = [_describe(d) for d in self._out]

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for detail, array in zip(self._in, arrays):
            integer = detail["dtype"] in (np.int8, np.uint8)
            tensor = quantize(array, detail) if integer else array.astype(detail["dtype"])
            self.interpreter.set_tensor(detail["index"], tensor)
        self.interpreter.invoke()
        results = []
        for detail in self._out:
            out = self.interpreter.get_tensor(detail["index"])
            integer = detail["dtype"] in (np.int8, np.uint8)
            results.append(dequantize(out, detail) if integer else out.astype(np.float32))
        return results


def _describe(detail: dict) -> dict:
    return {"name": detail["name"], "shape": [int(v) for v in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name}
