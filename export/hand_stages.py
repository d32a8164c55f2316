"""The hand pipeline's pretrained stages for a bundle: the shipped MediaPipe ``.tflite`` files
(fp16 weights), their ONNX conversions (tf2onnx), and int8 versions (ai-edge-quantizer) that
are kept only where their landmarks stay within :data:`MAX_LANDMARK_ERROR` of the float ones.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from device.errors import UserError

#: The int8 limit: mean landmark error against float, as a fraction of the hand box's side.
MAX_LANDMARK_ERROR = 0.03
STAGE_FILES = {"palm": "palm_detection", "landmark": "hand_landmark"}


def float32_with_signature(source: Path) -> bytes:
    """The ``.tflite`` with its fp16 weights widened to float32 and a ``serving_default``
    signature: ai-edge-quantizer calibrates through a signature (MediaPipe's files have none)
    and quantises constant float32 weights (not fp16 ones behind DEQUANTIZE ops)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(source))
    graph = model.subgraphs[0]
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(c) for c in model.operatorCodes]
    kept = []
    for op in graph.operators:
        source_tensor = graph.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) \
            else None
        if (codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE
                and source_tensor is not None
                and source_tensor.type == schema.TensorType.FLOAT16
                and model.buffers[source_tensor.buffer].data is not None):
            raw = np.asarray(model.buffers[source_tensor.buffer].data, np.uint8).tobytes()
            widened = schema.BufferT()
            widened.data = np.frombuffer(np.frombuffer(raw, np.float16).astype(np.float32)
                                         .tobytes(), np.uint8)
            model.buffers.append(widened)
            graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
        else:
            kept.append(op)
    graph.operators = kept

    def tensor_map(index: int):
        entry = schema.TensorMapT()
        name = graph.tensors[index].name
        entry.name = name.decode() if isinstance(name, bytes) else name
        entry.tensorIndex = index
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs = [tensor_map(i) for i in graph.inputs]
    signature.outputs = [tensor_map(i) for i in graph.outputs]
    model.signatureDefs = [signature]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize_int8(source: Path, calibration: list[np.ndarray], destination: Path,
                  workdir: Path) -> None:
    """Static int8 (weights and activations) of a MediaPipe stage, calibrated on ``calibration``
    (the stage's real inputs, recorded while the float pipeline ran on training photos)."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.utils import tfl_interpreter_utils

    widened = workdir / f"{source.stem}_fp32_sig.tflite"
    widened.write_bytes(float32_with_signature(source))
    qt = quantizer.Quantizer(str(widened))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    from ai_edge_litert.interpreter import Interpreter

    input_name = Interpreter(model_path=str(widened)).get_signature_runner() \
        .get_input_details().popitem()[0]
    data = {tfl_interpreter_utils.DEFAULT_SIGNATURE_KEY:
            [{input_name: x.astype(np.float32)} for x in calibration]}
    result = qt.quantize(qt.calibrate(data, num_threads=1), enable_progress_report=False)
    destination.write_bytes(without_unused_weights(bytes(result.quantized_model)))


def without_unused_weights(model_bytes: bytes) -> bytes:
    """Empty the buffers of constant tensors no operator reads any more (the fp16 weights the
    int8 ones replaced): the quantised file then carries only what runs."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    used_buffers = set()
    for graph in model.subgraphs:
        used = set(graph.inputs) | set(graph.outputs)
        for op in graph.operators:
            used |= {i for i in (op.inputs if op.inputs is not None else []) if i >= 0}
            used |= set(op.outputs if op.outputs is not None else [])
        used_buffers |= {graph.tensors[i].buffer for i in used}
    for index, buffer in enumerate(model.buffers):
        if index not in used_buffers and buffer.data is not None:
            buffer.data = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def conversion_cache() -> Path:
    """``.cache/hand_stages`` in the checkout (gitignored): conversions of the pinned files."""
    return Path(__file__).resolve().parents[1] / ".cache" / "hand_stages"


def convert_onnx(source: Path, destination: Path, opset: int = 17) -> None:
    """tf2onnx's TFLite front end: ``python -m tf2onnx.convert --tflite``. The result depends
    only on the source file, the opset and tf2onnx, so it is cached by those (a minute or
    more per model saved on every later export)."""
    import importlib.metadata

    from device.atomic import atomic_path
    from device.bundle import sha256_of

    version = importlib.metadata.version("tf2onnx")
    cached = conversion_cache() / f"{sha256_of(source)[:16]}-opset{opset}-tf2onnx{version}.onnx"
    if not cached.is_file():
        with atomic_path(cached, suffix=".onnx") as tmp:
            command = [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(source),
                       "--output", str(tmp), "--opset", str(opset)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise UserError(f"tf2onnx could not convert {source.name}: {' | '.join(tail)}")
    shutil.copyfile(cached, destination)


class Recorder:
    """Wraps a stage model's ``run`` to keep a copy of every input it is given."""

    def __init__(self, model, keep: list):
        self.model, self.keep = model, keep

    def __getattr__(self, name):
        return getattr(self.model, name)

    def run(self, arrays):
        self.keep.append(np.array(arrays[0], np.float32, copy=True))
        return self.model.run(arrays)


def record_stage_inputs(paths: list[Path], palm: Path, landmark: Path,
                        limit: int = 200) -> dict[str, list[np.ndarray]]:
    """The palm and landmark models' real inputs on ``paths`` (the float still-image tracker),
    at most ``limit`` of each: the int8 calibration sets."""
    import cv2

    from train.landmarks import hand_tracker_factory

    tracker = hand_tracker_factory(palm, landmark)()
    inputs: dict[str, list[np.ndarray]] = {"palm": [], "landmark": []}
    tracker.palm.model = Recorder(tracker.palm.model, inputs["palm"])
    tracker.landmark.model = Recorder(tracker.landmark.model, inputs["landmark"])
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        tracker.reset()
        tracker.process(image)
        if min(len(v) for v in inputs.values()) >= limit:
            break
    return {stage: values[:limit] for stage, values in inputs.items()}


def landmark_error(reference, other) -> dict:
    """Mean landmark distance of ``other`` from ``reference`` (train.landmarks.PhotoLandmarks),
    as a fraction of the reference hand box's longer side, over photos where both found a hand;
    and how often they disagree on whether there is a hand at all."""
    both = reference.found & other.found
    side = np.maximum(reference.box[both, 2], reference.box[both, 3])
    distance = np.linalg.norm(reference.landmarks[both, :, :2] - other.landmarks[both, :, :2],
                              axis=2).mean(axis=1)
    relative = distance / np.maximum(side, 1.0)
    return {"photos_compared": int(both.sum()),
            "mean_error": float(relative.mean()) if both.any() else 0.0,
            "p95_error": float(np.percentile(relative, 95)) if both.any() else 0.0,
            "found_disagree": int(np.sum(reference.found != other.found)),
            "found": int(other.found.sum()), "found_reference": int(reference.found.sum())}
