"""ONNX int8: onnxruntime static quantisation, QDQ format, per-channel weights, calibrated by
the same set as TFLite int8. ``quant_pre_process`` (shape inference + fusions) runs first, as
onnxruntime recommends; it needs sympy.

Activations *and* weights are unsigned (U8U8), not the signed default. onnxruntime runs uint8 x
int8 products on x86 CPUs with AVX2 but no VNNI through ``VPMADDUBSW``, which sums pairs of
products in 16 bits and saturates (its quantisation guide warns of it); per-channel weights use
the full int8 range in every channel, so the sums overflow often. Measured on an AMD EPYC
(AVX2, no VNNI) with export/onnx_study.py: the demo's int8 model lost 1.3 pt with signed
weights (issue 15 reports fruits at 59 %) while the same file computed exactly (no fused
kernels) lost nothing; tests/test_onnx_int8_kernels.py reproduces it on one convolution. U8U8
kernels widen to 16 bits before multiplying and never saturate, on x86 with or without VNNI and
on ARM (a Pi), so one file computes the same everywhere and the export's verdict, measured
here, holds on the device. ``reduce_range`` (7-bit weights) also avoids the overflow but throws
away a bit of weight precision on every CPU, including the Pi's, which never needed it.
"""

from pathlib import Path

from export.formats import ExportFormat
from export.formats._context import CalibrationReader

#: quantize_static settings (besides the calibration reader), shared with export/fallback.py.
SETTINGS = {"quant_format": "QDQ", "per_channel": True, "activation_type": "QUInt8",
            "weight_type": "QUInt8", "calibrate_method": "MinMax"}


def quantize_options(exclude: list[str] | None = None) -> dict:
    """:data:`SETTINGS` as onnxruntime's enums; ``exclude`` names nodes to leave in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {"quant_format": getattr(QuantFormat, SETTINGS["quant_format"]),
            "per_channel": SETTINGS["per_channel"],
            "activation_type": getattr(QuantType, SETTINGS["activation_type"]),
            "weight_type": getattr(QuantType, SETTINGS["weight_type"]),
            "calibrate_method": getattr(CalibrationMethod, SETTINGS["calibrate_method"]),
            "nodes_to_exclude": list(exclude or [])}


def prepared_model(context) -> Path:
    """The float model after ``quant_pre_process``, made once per export."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if "onnx_prepared" not in context._cache:
        prepared = context.workdir / "model_prepared.onnx"
        quant_pre_process(str(context.onnx_fp32()), str(prepared), skip_symbolic_shape=False)
        context._cache["onnx_prepared"] = prepared
    return context._cache["onnx_prepared"]


def quantise(context, destination: Path, exclude: list[str] | None = None) -> None:
    """Quantise the float model into ``destination``, leaving the ``exclude`` nodes in float."""
    import onnx
    from onnxruntime.quantization import quantize_static

    calibration = context.require_calibration("onnx-int8")
    prepared = prepared_model(context)
    input_name = onnx.load(str(prepared)).graph.input[0].name
    quantize_static(str(prepared), str(destination), CalibrationReader(calibration, input_name),
                    **quantize_options(exclude))


def convert(context, destination: Path) -> None:
    quantise(context, destination)


FORMAT = ExportFormat("onnx-int8", "onnx", "int8", "model_int8.onnx", True, 60, convert)
