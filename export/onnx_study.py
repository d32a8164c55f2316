"""``python -m export.onnx_study TASK --artifacts DIR``: why ONNX int8 slips on some x86 CPUs.

Re-quantises a trained model's float ONNX graph with onnxruntime's ``quantize_static`` in several
settings (per-channel or per-tensor weights, 8- or 7-bit weights, signed or unsigned activations,
QDQ or QOperator) on the export's own calibration set, and scores each on the test split twice:

* ``x86 kernels``: onnxruntime with its graph optimisations on, as the device runs it. QDQ pairs
  fuse into integer kernels (QLinearConv, MatMulInteger...). On an AVX2 CPU without VNNI those
  multiply uint8 by int8 with ``VPMADDUBSW``, which adds pairs of products into *16-bit* lanes
  and saturates: 255 * 127 * 2 = 64,770 does not fit in 32,767.
* ``reference``: the same file with every optimisation off. Each QDQ pair then runs as
  DequantizeLinear -> float op -> QuantizeLinear: the exact int8 arithmetic, with 32-bit sums,
  which is what a non-saturating kernel computes (ARM NEON/dot-product on a Pi, x86 with VNNI).

A setting whose two scores differ is broken by the kernel, not by quantisation. Run it where the
question is asked: the numbers are this CPU's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

#: name -> quantize_static keyword arguments (on top of MinMax calibration).
SETTINGS = {
    "QDQ S8S8 per-channel (as exported before)": dict(
        quant_format="QDQ", per_channel=True, activation_type="QInt8", weight_type="QInt8"),
    "QDQ S8S8 per-channel reduce_range": dict(
        quant_format="QDQ", per_channel=True, activation_type="QInt8", weight_type="QInt8",
        reduce_range=True),
    "QDQ S8S8 per-tensor": dict(
        quant_format="QDQ", per_channel=False, activation_type="QInt8", weight_type="QInt8"),
    "QDQ U8S8 per-channel": dict(
        quant_format="QDQ", per_channel=True, activation_type="QUInt8", weight_type="QInt8"),
    "QDQ U8S8 per-channel reduce_range": dict(
        quant_format="QDQ", per_channel=True, activation_type="QUInt8", weight_type="QInt8",
        reduce_range=True),
    "QDQ U8U8 per-channel": dict(
        quant_format="QDQ", per_channel=True, activation_type="QUInt8", weight_type="QUInt8"),
    "QDQ U8U8 per-tensor": dict(
        quant_format="QDQ", per_channel=False, activation_type="QUInt8", weight_type="QUInt8"),
    "QOperator U8S8 per-channel": dict(
        quant_format="QOperator", per_channel=True, activation_type="QUInt8",
        weight_type="QInt8"),
    "QOperator U8S8 per-channel reduce_range": dict(
        quant_format="QOperator", per_channel=True, activation_type="QUInt8",
        weight_type="QInt8", reduce_range=True),
}


def session(path: Path, optimised: bool):
    """One single-threaded CPU session; ``optimised=False`` keeps the graph as written (QDQ runs
    as float ops between quantise/dequantise: the non-saturating reference)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimised
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict(path: Path, inputs: np.ndarray, optimised: bool = True) -> np.ndarray:
    run = session(path, optimised)
    name = run.get_inputs()[0].name
    return np.concatenate([run.run(None, {name: inputs[i:i + 256]})[0]
                           for i in range(0, len(inputs), 256)])


def latency_ms(path: Path, sample: np.ndarray, runs: int = 200) -> float:
    run = session(path, True)
    name = run.get_inputs()[0].name
    for _ in range(10):
        run.run(None, {name: sample})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run.run(None, {name: sample})
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def quantise(prepared: Path, destination: Path, calibration: np.ndarray, options: dict) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from export.formats._context import CalibrationReader

    name = onnx.load(str(prepared)).graph.input[0].name
    kwargs = dict(options)
    kwargs["quant_format"] = getattr(QuantFormat, kwargs["quant_format"])
    kwargs["activation_type"] = getattr(QuantType, kwargs["activation_type"])
    kwargs["weight_type"] = getattr(QuantType, kwargs["weight_type"])
    quantize_static(str(prepared), str(destination), CalibrationReader(calibration, name),
                    calibrate_method=CalibrationMethod.MinMax, **kwargs)


def study(task: str, artifacts: Path, settings: dict = SETTINGS) -> list[dict]:
    """One row per setting: accuracy with the x86 kernels and with the reference arithmetic."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from device.preprocess import to_input
    from export.exporter import calibration_inputs
    from export.formats._context import ExportContext
    from export.source import load_trained, training_data

    trained = load_trained(artifacts, task)
    data = training_data(trained)
    calibration = calibration_inputs(trained, data, 500, 0, artifacts / "calibration")
    x_test = to_input(data.x_test, trained.spec)
    work = Path(tempfile.mkdtemp(prefix="onnx-study-"))
    try:
        trained.load_model().export(str(work / "saved_model"), format="tf_saved_model",
                                    verbose=False)
        fp32 = ExportContext(work / "saved_model", work, calibration).onnx_fp32()
        prepared = work / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=False)
        reference = predict(fp32, x_test).argmax(1)
        rows = [{"setting": "float32", "x86": float(np.mean(reference == data.y_test)),
                 "reference": float(np.mean(reference == data.y_test)),
                 "ms": latency_ms(fp32, x_test[:1])}]
        for name, options in settings.items():
            path = work / f"{len(rows)}.onnx"
            quantise(prepared, path, calibration, options)
            fused = predict(path, x_test, True).argmax(1)
            exact = predict(path, x_test, False).argmax(1)
            rows.append({"setting": name, "x86": float(np.mean(fused == data.y_test)),
                         "reference": float(np.mean(exact == data.y_test)),
                         "x86_agreement": float(np.mean(fused == reference)),
                         "reference_agreement": float(np.mean(exact == reference)),
                         "ms": latency_ms(path, x_test[:1])})
            print(render([rows[-1]], header=False), flush=True)
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(rows: list[dict], header: bool = True) -> str:
    lines = ["| setting | accuracy, x86 kernels | agreement | accuracy, reference arithmetic "
             "| agreement | ms |", "|---|---:|---:|---:|---:|---:|"] if header else []
    for r in rows:
        lines.append(f"| {r['setting']} | {r['x86']:.2%} | {r.get('x86_agreement', 1):.2%} | "
                     f"{r['reference']:.2%} | {r.get('reference_agreement', 1):.2%} | "
                     f"{r['ms']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = parser.parse_args()
    print(render(study(args.task, args.artifacts)))


if __name__ == "__main__":
    main()
