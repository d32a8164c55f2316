"""ONNX dynamic int8 (weights only, activations quantised at run time); optional."""

from pathlib import Path

from export.formats import ExportFormat


def convert(context, destination: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(context.onnx_fp32()), str(destination), weight_type=QuantType.QInt8)


FORMAT = ExportFormat("onnx-dynamic", "onnx", "dynamic", "model_dynamic.onnx", False, 70, convert,
                      optional=True)
