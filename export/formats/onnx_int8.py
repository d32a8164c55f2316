"""ONNX int8: onnxruntime static quantisation, QDQ format, per-channel weights, calibrated by
the same set as TFLite int8. ``quant_pre_process`` (shape inference + fusions) runs first, as
onnxruntime recommends; it needs sympy."""

from pathlib import Path

from export.formats import ExportFormat
from export.formats._context import CalibrationReader


def convert(context, destination: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = context.require_calibration("onnx-int8")
    source = context.onnx_fp32()
    prepared = context.workdir / "model_prepared.onnx"
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
    input_name = onnx.load(str(prepared)).graph.input[0].name
    quantize_static(str(prepared), str(destination), CalibrationReader(calibration, input_name),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)


FORMAT = ExportFormat("onnx-int8", "onnx", "int8", "model_int8.onnx", True, 60, convert)
