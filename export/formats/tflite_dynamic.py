"""TFLite dynamic-range: int8 weights, activations quantised on the fly; needs no calibration."""

from pathlib import Path

from export.formats import ExportFormat


def convert(context, destination: Path) -> None:
    import tensorflow as tf

    converter = context.tflite_converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    destination.write_bytes(converter.convert())


FORMAT = ExportFormat("tflite-dynamic", "tflite", "dynamic", "model_dynamic.tflite", False, 30,
                      convert)
