"""TFLite float16 weights: half the size, float compute (dequantised at load on CPU)."""

from pathlib import Path

from export.formats import ExportFormat


def convert(context, destination: Path) -> None:
    import tensorflow as tf

    converter = context.tflite_converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    destination.write_bytes(converter.convert())


FORMAT = ExportFormat("tflite-fp16", "tflite", "fp16", "model_fp16.tflite", False, 20, convert)
