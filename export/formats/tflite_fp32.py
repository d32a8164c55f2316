"""TFLite float32: the reference for every other TFLite file."""

from pathlib import Path

from export.formats import ExportFormat


def convert(context, destination: Path) -> None:
    destination.write_bytes(context.tflite_converter().convert())


FORMAT = ExportFormat("tflite-fp32", "tflite", "fp32", "model_fp32.tflite", False, 10, convert)
