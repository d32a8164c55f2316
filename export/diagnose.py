"""``python -m export diagnose TASK --format tflite-int8|onnx-int8``: which layers quantisation hurt.

Runs the float32 and the quantised model of a bundle on the same calibration images and compares
every intermediate activation they share: SQNR (signal-to-quantisation-noise ratio, dB; higher
is better), cosine similarity and RMSE relative to the float activation's spread. The worst
layers are listed first and written to ``artifacts/TASK/diagnose-FORMAT.md`` (+ ``.json``).

* TFLite: both interpreters keep every tensor (``experimental_preserve_all_tensors``); the
  int8 tensors are dequantised with their own scale/zero-point and matched by name.
* ONNX: onnxruntime's ``qdq_loss_debug`` helpers add every node output to both models, collect
  activations with the same data reader, and match QDQ tensors to their float originals.

Errors compound through a network, so the first layer in graph order whose SQNR falls far below
its predecessors' is usually the culprit, not merely the last one.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from device.atomic import write_json, write_text
from device.bundle import open_bundle
from device.errors import UserError

DIAGNOSABLE = ("tflite-int8", "onnx-int8", "tflite-dynamic", "tflite-fp16")


def layer_metrics(reference: np.ndarray, quantised: np.ndarray) -> dict:
    """SQNR (dB), cosine similarity and RMSE / std of the reference, over all images."""
    a = reference.astype(np.float64).ravel()
    b = quantised.astype(np.float64).ravel()
    noise = np.linalg.norm(a - b)
    signal = np.linalg.norm(a)
    sqnr = 20 * math.log10(max(signal, 1e-12) / max(noise, 1e-12))
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    cosine = float(a @ b / denominator) if denominator > 0 else (1.0 if noise == 0 else 0.0)
    rmse = float(np.sqrt(np.mean((a - b) ** 2)))
    return {"sqnr_db": round(sqnr, 2), "cosine": round(cosine, 5),
            "rmse_rel": round(rmse / max(float(np.std(a)), 1e-12), 4)}


def short_name(tensor_name: str) -> str:
    """``model/block1_1_relu_1/Relu;...`` or ``.../block1_1_relu/Relu:0`` -> ``block1_1_relu/Relu``."""
    first = tensor_name.split(";")[0]
    if first.endswith(":0"):
        first = first[:-2]
    name = "/".join(first.split("/")[-2:])
    return name.replace("_1/", "/")


def tflite_activations(path: Path, inputs: np.ndarray) -> tuple[dict, list[str]]:
    """Every activation tensor (batch dim first) of a TFLite model over ``inputs``, dequantised."""
    from device.backends.litert import dequantize, interpreter_class, quantize

    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    details = [d for d in interpreter.get_tensor_details()
               if len(d["shape"]) >= 2 and d["shape"][0] == 1 and d["index"] != input_detail["index"]
               and np.dtype(d["dtype"]).kind in "fi"]
    order = [d["name"] for d in details]
    collected: dict[str, list[np.ndarray]] = {name: [] for name in order}
    integer_input = input_detail["dtype"] in (np.int8, np.uint8)
    for image in inputs:
        batch = image[None]
        interpreter.set_tensor(input_detail["index"],
                               quantize(batch, input_detail) if integer_input else batch)
        interpreter.invoke()
        for detail in details:
            value = interpreter.get_tensor(detail["index"])
            scale = detail["quantization"][0]
            if value.dtype in (np.int8, np.uint8, np.int16) and scale:
                value = dequantize(value, detail)
            elif value.dtype.kind == "i":
                continue  # shapes, indices: not activations
            collected[detail["name"]].append(value.astype(np.float32))
    return {k: np.concatenate(v) for k, v in collected.items() if v}, order


def diagnose_tflite(bundle, key: str, inputs: np.ndarray) -> list[dict]:
    float_acts, _ = tflite_activations(bundle.model_path("tflite-fp32"), inputs)
    quant_acts, order = tflite_activations(bundle.model_path(key), inputs)
    rows = []
    for position, name in enumerate(order):
        if name in quant_acts and name in float_acts and \
                quant_acts[name].shape == float_acts[name].shape:
            rows.append({"layer": short_name(name), "tensor": name, "position": position,
                         "shape": list(quant_acts[name].shape[1:]),
                         **layer_metrics(float_acts[name], quant_acts[name])})
    return rows


def diagnose_onnx(bundle, key: str, inputs: np.ndarray) -> list[dict]:
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from export.formats._context import CalibrationReader

    with tempfile.TemporaryDirectory() as tmp:
        float_aug, quant_aug = Path(tmp) / "float.onnx", Path(tmp) / "quant.onnx"
        modify_model_output_intermediate_tensors(str(bundle.model_path("onnx-fp32")), str(float_aug))
        modify_model_output_intermediate_tensors(str(bundle.model_path(key)), str(quant_aug))
        input_name = onnx.load(str(float_aug)).graph.input[0].name
        float_acts = collect_activations(str(float_aug), CalibrationReader(inputs, input_name))
        quant_acts = collect_activations(str(quant_aug), CalibrationReader(inputs, input_name))
        order = [out for node in onnx.load(str(bundle.model_path("onnx-fp32"))).graph.node
                 for out in node.output]
    matched = create_activation_matching(quant_acts, float_acts)
    rows = []
    for name, match in matched.items():
        if "float" not in match or match.get("post_qdq") is None:
            continue
        reference = np.concatenate(match["float"])
        quantised = np.concatenate(match["post_qdq"])
        if reference.shape != quantised.shape:
            continue
        rows.append({"layer": short_name(name), "tensor": name,
                     "position": order.index(name) if name in order else len(order),
                     "shape": list(reference.shape[1:]), **layer_metrics(reference, quantised)})
    return sorted(rows, key=lambda r: r["position"])


#: Healthy int8 activations sit around 25-45 dB SQNR; below this the layer has lost the signal.
COLLAPSE_DB = 20.0


def first_collapse(rows: list[dict], floor_db: float = COLLAPSE_DB) -> dict | None:
    """The first layer in graph order whose SQNR is below ``floor_db``: later layers inherit its
    error, so this is where to look first."""
    for row in sorted(rows, key=lambda r: r["position"]):
        if row["sqnr_db"] < floor_db:
            return row
    return None


def diagnose(task: str, key: str, artifacts: Path = Path("artifacts"), bundle_dir: Path | None = None,
             images: int = 64, calibration_dir: Path | None = None, top: int = 10,
             effect: bool = True, data_dir: str | None = None) -> dict:
    """Per-layer SQNR on the images the quantised model flipped (calibration images when it
    flipped none) and, for int8, every layer's effect on the output (export/fallback.py): the
    ranking that names the culprit. Needs the trained model beside the bundle for the latter."""
    if key not in DIAGNOSABLE:
        raise UserError(f"--format {key} cannot be diagnosed: choose one of {', '.join(DIAGNOSABLE)}")
    bundle = open_bundle(bundle_dir or Path(artifacts) / task / "bundle")
    if key not in bundle.models:
        raise UserError(f"bundle {bundle.root} has no {key} model: export it first")
    reference = "onnx-fp32" if key.startswith("onnx") else "tflite-fp32"
    if reference not in bundle.models:
        raise UserError(f"bundle {bundle.root} lacks {reference}, the float reference for {key}")
    calibration = diagnosis_inputs(bundle, images, calibration_dir)
    flipped = flipped_images(bundle, key, Path(artifacts) / task, data_dir) if effect else None
    inputs = calibration
    if flipped is not None and len(flipped["inputs"]) and flipped["flips"]:
        inputs = flipped["inputs"][:max(images, flipped["flips"])]
    rows = (diagnose_onnx if key.startswith("onnx") else diagnose_tflite)(bundle, key, inputs)
    if not rows:
        raise UserError(f"no comparable layers found between {reference} and {key}")
    worst = sorted(rows, key=lambda r: r["sqnr_db"])
    result = {"task": task, "format": key, "bundle": str(bundle.root), "images": int(len(inputs)),
              "on": "flipped test images" if inputs is not calibration else "calibration images",
              "flips": None if flipped is None else flipped["flips"],
              "layers": rows, "worst": worst[:top], "first_collapse": first_collapse(rows),
              "effect": None}
    if flipped is not None and key in ("tflite-int8", "onnx-int8"):
        result["effect"] = effect_ranking(bundle, key, flipped, calibration_dir)
    out = Path(bundle.root).parent / f"diagnose-{key}"
    write_json(out.with_suffix(".json"), result)
    write_text(out.with_suffix(".md"), render(result))
    result["report"] = str(out.with_suffix(".md"))
    return result


def flipped_images(bundle, key: str, trained_dir: Path, data_dir: str | None) -> dict | None:
    """The test images ranked worst first (flipped, then by output error) with the Keras float
    model's probabilities for them; None when the trained model is not beside the bundle."""
    from device.backends import load_classifier
    from device.preprocess import to_input
    from export.compare import predict_all
    from export.fallback import ranking_set
    from export.source import Trained, training_data

    folder = next((f for f in (Path(bundle.root).parent, trained_dir)
                   if (f / "model.keras").is_file() and (f / "metrics.json").is_file()), None)
    if folder is None:
        print("diagnose: no model.keras beside the bundle or in the artifacts; SQNR on "
              "calibration images only")
        return None
    trained = Trained(bundle.task, folder, json.loads((folder / "metrics.json").read_text()))
    model = trained.load_model()
    x = to_input(training_data(trained, data_dir).x_test, trained.spec)
    reference = model.predict(x, batch_size=256, verbose=0)
    entry = bundle.models[key]
    probs = predict_all(load_classifier(bundle.model_path(key), entry["format"]), x)
    chosen = ranking_set(probs, reference)
    return {"model": model, "trained": trained, "inputs": x[chosen],
            "reference": reference[chosen], "format": entry["format"],
            "flips": int(np.sum(probs.argmax(1) != reference.argmax(1)))}


def effect_ranking(bundle, key: str, flipped: dict, calibration_dir: Path | None) -> list[dict]:
    """Each weighted layer kept in float alone, re-quantised with the task's calibration set:
    flips undone and output error removed on the worst images, largest effect first."""
    import calibration_data
    from device.check import load_samples
    from export.fallback import QUANTISERS, rank_layers, rank_with_partners
    from export.formats._context import ExportContext

    spec = {k: v for k, v in bundle.preprocessing.items() if k != "int8_input"}
    try:
        x, _, _ = calibration_data.load(bundle.task, spec, bundle.labels,
                                        calibration_dir or calibration_data.HERE)
    except UserError:
        x, _ = load_samples(bundle)  # what the export calibrated on is gone: the closest set
    int8_io = bundle.metadata.get("input", {}).get("int8_io", "int8")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        flipped["model"].export(str(work / "saved_model"), format="tf_saved_model",
                                verbose=False)
        context = ExportContext(work / "saved_model", work, x, int8_io)
        if key == "onnx-int8":
            context._cache["onnx_fp32"] = bundle.model_path("onnx-fp32")
        quantiser = QUANTISERS[key](context, flipped["model"])
        ranking = rank_layers(quantiser, flipped["format"], flipped["inputs"],
                              flipped["reference"], work / "rank")
        if ranking and ranking[0]["flips_undone"] <= 0 and len(ranking) > 1:
            # No layer alone undoes a flip: the flaw needs two in float; rank by pairs.
            ranking = rank_with_partners(quantiser, flipped["format"], flipped["inputs"],
                                         flipped["reference"], work / "pairs", ranking)
    return [{k: v for k, v in row.items() if k != "layer_ref"} for row in ranking]


def diagnosis_inputs(bundle, images: int, calibration_dir: Path | None) -> np.ndarray:
    """Calibration images if the task's set is at hand (what int8 was calibrated on), else the
    bundle's own samples."""
    import calibration_data
    from device.check import load_samples

    try:
        x, _, _ = calibration_data.load(bundle.task, {k: v for k, v in bundle.preprocessing.items()
                                                     if k != "int8_input"}, bundle.labels,
                                        calibration_dir or calibration_data.folder_for(
                                            Path(bundle.root).parent))
    except UserError:
        x, _ = load_samples(bundle)
    rng = np.random.default_rng(0)
    return x[np.sort(rng.permutation(len(x))[:images])]


def render(result: dict) -> str:
    lines = [f"# Quantisation diagnosis: {result['task']} {result['format']}", "",
             f"{result['images']} {result.get('on', 'images')} through the float and the quantised model; every shared "
             "activation compared. SQNR in dB (higher is better; int8 layers are typically "
             "25-40 dB), cosine similarity, RMSE relative to the float activation's std.", ""]
    effect = result.get("effect")
    if effect:
        lines += ["## Layers by their effect on the output", "",
                  f"Each layer kept in float alone (the rest int8), run on the {result['images']} "
                  f"worst test images ({result['flips']} flipped): flips undone and mean output "
                  "error (L1 between probability vectors) removed. The first row is the layer to "
                  "keep in float (what the export's fallback does).", "",
                  "| # | layer | flips undone | output error removed |", "|---:|---|---:|---:|"]
        lines += [f"| {i} | `{r['layer']}` | {r['flips_undone']} | {r['error_reduction']} |"
                  for i, r in enumerate(effect, 1)]
        lines.append("")
        if "with_partner" in effect[0]:
            lines += ["No layer alone undid a flip, so every pair was kept in float once: layers "
                      "by the most flips a pair with them undoes (the layer in most fixing pairs "
                      "first).", "", "| # | layer | best partner | flips undone together |",
                      "|---:|---|---|---:|"]
            for i, r in enumerate(effect, 1):
                partner = f"`{r['partner']}`" if r["partner"] else "–"
                lines.append(f"| {i} | `{r['layer']}` | {partner} | {r['with_partner']} |")
            lines.append("")
    collapse = result["first_collapse"]
    if collapse:
        lines += [f"**First collapse in graph order:** `{collapse['layer']}` "
                  f"(SQNR {collapse['sqnr_db']} dB): start looking here.", ""]
    lines += ["## Worst layers first", "",
              "| # | layer | shape | SQNR dB | cosine | RMSE/std |", "|---:|---|---|---:|---:|---:|"]
    for i, row in enumerate(result["worst"], 1):
        lines.append(f"| {i} | `{row['layer']}` | {'x'.join(map(str, row['shape']))} | "
                     f"{row['sqnr_db']} | {row['cosine']} | {row['rmse_rel']} |")
    lines += ["", "## All layers in graph order", "", "| layer | SQNR dB | cosine |",
              "|---|---:|---:|"]
    lines += [f"| `{r['layer']}` | {r['sqnr_db']} | {r['cosine']} |" for r in result["layers"]]
    return "\n".join(lines) + "\n"


def print_table(result: dict) -> None:
    if result.get("effect"):
        print(f"{result['task']} {result['format']}: layers by effect on the output "
              f"({result['flips']} flipped test images)")
        print(f"{'#':>3}  {'layer':<40}{'flips undone':>14}{'error removed':>15}")
        for i, row in enumerate(result["effect"], 1):
            partner = (f"  with {row['partner']}: {row['with_partner']} undone"
                       if row.get("partner") else "")
            print(f"{i:>3}  {row['layer'][:39]:<40}{row['flips_undone']:>14}"
                  f"{row['error_reduction']:>15.4f}{partner}")
    print(f"{result['task']} {result['format']}: worst SQNR first ({result['images']} "
          f"{result.get('on', 'images')})")
    print(f"{'#':>3}  {'layer':<48}{'SQNR dB':>9}{'cosine':>9}{'RMSE/std':>10}")
    for i, row in enumerate(result["worst"], 1):
        print(f"{i:>3}  {row['layer'][:47]:<48}{row['sqnr_db']:>9.2f}{row['cosine']:>9.4f}"
              f"{row['rmse_rel']:>10.4f}")
    if result["first_collapse"]:
        print(f"first collapse in graph order: {result['first_collapse']['layer']}")
    print(f"report: {result['report']}")
