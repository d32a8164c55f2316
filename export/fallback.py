"""Accuracy-controlled int8: keep the layers that cost the most accuracy in float, one at a time.

After NNCF's ``quantize_with_accuracy_control``: when a fully int8 model fails its thresholds
(export/regression.py), every quantisable layer (convolutions and dense layers) is ranked by its
*effect on the output*: the model is re-quantised with that one layer left in float and run on
the images where int8 hurt most (the flipped ones first); the layer whose revert brings the
outputs closest to the float model's ranks first. The top layer is kept in float; if the model
still fails, the remaining layers are ranked again *given* the ones already kept (greedy, one
layer per step), until the model passes or ``max_layers_kept_float`` is reached.

Re-ranking matters because effects interact. Measured on the planted digits model of
tests/test_int8_fallback.py under onnxruntime: keeping the planted conv float undid only 32 of
370 flips, and every other layer alone undid 0, so a one-off ranking ordered the rest by noise
(the layer that completes the fix, ``block2_1_conv``, ranked last in one run and a CI export
ran out of its 4 layers); ranked again beside the planted conv, it is the clear first.

SQNR alone can miss the culprit: a layer can keep 35 dB on average and still flip a class, and a
low-SQNR layer can be harmless downstream. Measuring what the output does is what decides.

Each format has a quantiser that can leave named layers in float:

* TFLite: the converter calibrates once (``_experimental_calibrate_only``, as TFLite's own
  QuantizationDebugger does), then ``mlir_quantize`` re-quantises with ``denylisted_nodes``.
* ONNX: ``quantize_static`` with ``nodes_to_exclude`` (export/formats/onnx_int8.py settings).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.backends import load_classifier
from export.compare import predict_all

#: Images (worst first) the ranking runs on: every flipped one, then the largest output errors.
RANKING_IMAGES = 300


@dataclass(frozen=True)
class Layer:
    node: str   # what the quantiser excludes: a TFLite output tensor / ONNX node name
    name: str   # the Keras layer it came from, for people


def keras_layer_name(node: str, weighted: list[str]) -> str:
    """The Keras layer a converted node belongs to: the longest weighted layer name that appears
    as a path component of the node's name (``.../block2_1_conv_1/convolution``)."""
    parts = {p.removesuffix("_1") for piece in node.split(";") for p in piece.split("/")}
    found = [name for name in weighted if name in parts]
    return max(found, key=len) if found else node.split(";")[0]


def weighted_layers(model) -> list[str]:
    """Names of the Keras layers with a kernel (convolutions, dense), nested models included."""
    names = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            names += weighted_layers(layer)
        elif getattr(layer, "kernel", None) is not None:
            names.append(layer.name)
    return names


class TfliteQuantiser:
    """Full-integer TFLite with some layers left in float (float I/O when any is)."""

    suffix = ".tflite"
    WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")

    def __init__(self, context, model):
        import tensorflow as tf

        converter = context.tflite_converter()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = context.representative_dataset()
        converter._experimental_calibrate_only = True  # noqa: SLF001 - as QuantizationDebugger
        converter.experimental_mlir_quantizer = True
        self.calibrated = converter.convert()
        self.int8_io = context.int8_io
        self.layers = self._layers(weighted_layers(model))

    def _layers(self, weighted: list[str]) -> list[Layer]:
        from device.backends.litert import interpreter_class

        interpreter = interpreter_class()[0](model_content=self.calibrated)
        names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
        return [Layer(names[op["outputs"][0]], keras_layer_name(names[op["outputs"][0]], weighted))
                for op in interpreter._get_ops_details()  # noqa: SLF001 - no public op list
                if op["op_name"] in self.WEIGHTED_OPS]

    def build(self, keep_float: list[Layer], destination: Path) -> None:
        import tensorflow as tf
        from tensorflow.lite.python import convert

        io_type = tf.uint8 if self.int8_io == "uint8" else tf.int8
        io = {} if keep_float else {"input_data_type": io_type, "output_data_type": io_type}
        destination.write_bytes(convert.mlir_quantize(
            self.calibrated, fully_quantize=not keep_float,
            denylisted_nodes=[layer.node for layer in keep_float] or None, **io))


class OnnxQuantiser:
    """onnxruntime static int8 with some nodes left in float."""

    suffix = ".onnx"
    WEIGHTED_OPS = ("Conv", "MatMul", "Gemm", "ConvTranspose")

    def __init__(self, context, model):
        import onnx

        from export.formats.onnx_int8 import prepared_model

        self.context = context
        graph = onnx.load(str(prepared_model(context))).graph
        weighted = weighted_layers(model)
        # tf2onnx renames convolutions (``Conv__42``); their weight input keeps the Keras path.
        self.layers = [Layer(node.name, keras_layer_name(";".join([node.name, *node.input[1:2]]),
                                                         weighted))
                       for node in graph.node if node.op_type in self.WEIGHTED_OPS]

    def build(self, keep_float: list[Layer], destination: Path) -> None:
        from export.formats.onnx_int8 import quantise

        quantise(self.context, destination, [layer.node for layer in keep_float])


QUANTISERS = {"tflite-int8": TfliteQuantiser, "onnx-int8": OnnxQuantiser}


def output_error(probs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per image: the L1 distance between the two probability vectors (0 = the float output)."""
    return np.abs(probs - reference).sum(axis=1)


def ranking_set(probs: np.ndarray, reference: np.ndarray, count: int = RANKING_IMAGES
                ) -> np.ndarray:
    """Indices of the images quantisation hurt most: flipped ones first, then by output error."""
    flipped = probs.argmax(1) != reference.argmax(1)
    order = np.lexsort((-output_error(probs, reference), ~flipped))
    return order[:count]


def rank_layers(quantiser, model_format: str, inputs: np.ndarray, reference: np.ndarray,
                workdir: Path, kept: list[Layer] | None = None) -> list[dict]:
    """Every layer's effect on the output, largest first: how much the output error on
    ``inputs`` falls, and how many flips are undone, when that layer also stays float (beside
    the ``kept`` ones, which are float in the baseline too and are not ranked)."""
    kept = list(kept or [])
    workdir.mkdir(parents=True, exist_ok=True)
    baseline_path = workdir / f"baseline{quantiser.suffix}"
    quantiser.build(kept, baseline_path)
    baseline = predict_file(baseline_path, model_format, inputs)
    base_error = output_error(baseline, reference)
    base_flips = int(np.sum(baseline.argmax(1) != reference.argmax(1)))
    rows = []
    for position, layer in enumerate(quantiser.layers):
        if layer in kept:
            continue
        path = workdir / f"float-{position}{quantiser.suffix}"
        quantiser.build([*kept, layer], path)
        probs = predict_file(path, model_format, inputs)
        flips = int(np.sum(probs.argmax(1) != reference.argmax(1)))
        error = output_error(probs, reference)
        rows.append({"layer": layer.name, "node": layer.node, "position": position,
                     "flips_undone": base_flips - flips, "flips_left": flips,
                     "error_reduction": round(float(base_error.mean() - error.mean()), 6),
                     "layer_ref": layer})
        path.unlink(missing_ok=True)
    return sorted(rows, key=lambda r: (-r["flips_undone"], -r["error_reduction"]))


def rank_with_partners(quantiser, model_format: str, inputs: np.ndarray, reference: np.ndarray,
                       workdir: Path, ranking: list[dict]) -> list[dict]:
    """``ranking`` (from :func:`rank_layers`) re-ordered by what each layer undoes *with a
    partner*, for a flaw no single layer fixes: every pair is kept in float once; a layer's
    ``with_partner`` is the most flips a pair with it undoes (``partner``: that layer) and
    ``pair_total`` the sum over its partners. The layer in most of the fixing pairs ranks first.

    Under onnxruntime the planted flaw of tests/test_int8_fallback.py needs two layers in float,
    and on an AVX512-VNNI CPU neither alone undoes a flip: the single ranking is then noise."""
    workdir.mkdir(parents=True, exist_ok=True)
    base_flips = ranking[0]["flips_left"] + ranking[0]["flips_undone"]  # rank_layers' baseline
    undone = {row["position"]: {} for row in ranking}  # position -> partner's position -> gain
    for i, first in enumerate(ranking):
        for second in ranking[i + 1:]:
            path = workdir / f"pair-{first['position']}-{second['position']}{quantiser.suffix}"
            quantiser.build([first["layer_ref"], second["layer_ref"]], path)
            probs = predict_file(path, model_format, inputs)
            path.unlink(missing_ok=True)
            gain = base_flips - int(np.sum(probs.argmax(1) != reference.argmax(1)))
            undone[first["position"]][second["position"]] = gain
            undone[second["position"]][first["position"]] = gain
    names = {row["position"]: row["layer"] for row in ranking}
    for row in ranking:
        gains = undone[row["position"]]
        best = max(gains, key=gains.get) if gains else None
        row["with_partner"] = max(0, gains[best]) if best is not None else 0
        row["partner"] = names[best] if row["with_partner"] > 0 else None
        row["pair_total"] = int(sum(g for g in gains.values() if g > 0))
    return sorted(ranking, key=lambda r: (-r["with_partner"], -r["pair_total"],
                                          -r["error_reduction"]))


def predict_file(path: Path, model_format: str, inputs: np.ndarray) -> np.ndarray:
    return predict_all(load_classifier(path, model_format, threads=1), inputs)


def accuracy_controlled(quantiser, evaluation, int8_path: Path, model_format: str,
                        max_layers: int | None = None) -> tuple[Path, list[str]] | None:
    """The first model, keeping 1, 2, ... greedily chosen layers in float, whose verdict is ok;
    written beside ``int8_path`` as ``<stem>_mixed<suffix>``. Each step ranks the remaining
    layers on the images the current model still hurts most, given the layers already kept.
    None when ``max_layers`` are kept in float and it still fails (the fully int8 model then
    stays marked failing)."""
    from export.regression import violations

    limit = min(max_layers or int(evaluation.limits.get("max_layers_kept_float", 4)),
                len(quantiser.layers))
    destination = int8_path.with_name(f"{int8_path.stem}_mixed{quantiser.suffix}")
    workdir = int8_path.parent / ".fallback"
    current, keep = int8_path, []
    try:
        for count in range(1, limit + 1):
            probs = predict_file(current, model_format, evaluation.x_test)
            chosen = ranking_set(probs, evaluation.reference)
            ranking = rank_layers(quantiser, model_format, evaluation.x_test[chosen],
                                  evaluation.reference[chosen], workdir, kept=keep)
            print(f"fallback ranking, step {count} (layer also kept float: flips undone, output "
                  "error reduction): " +
                  ", ".join(f"{r['layer']} {r['flips_undone']} {r['error_reduction']:.4f}"
                            for r in ranking), flush=True)
            keep = [*keep, ranking[0]["layer_ref"]]
            quantiser.build(keep, destination)
            found = violations(evaluation.compare_file(destination, model_format),
                               evaluation.limits)
            names = [layer.name for layer in keep]
            print(f"fallback: {count} layer(s) in float ({', '.join(names)}): "
                  f"{'within thresholds' if not found else '; '.join(found)}", flush=True)
            if not found:
                return destination, names
            current = destination
        destination.unlink(missing_ok=True)
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
