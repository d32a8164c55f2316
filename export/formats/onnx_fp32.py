"""ONNX float32 via the SavedModel route and tf2onnx."""

import shutil
from pathlib import Path

from export.formats import ExportFormat


def convert(context, destination: Path) -> None:
    shutil.copyfile(context.onnx_fp32(), destination)


FORMAT = ExportFormat("onnx-fp32", "onnx", "fp32", "model_fp32.onnx", False, 50, convert)
