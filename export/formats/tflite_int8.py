"""TFLite full-integer int8: weights, activations and I/O in int8 (or uint8), calibrated.

The input scale/zero-point it ends up with are read back into metadata.json, so a device can
feed raw quantised pixels.
"""

from pathlib import Path

from export.formats import ExportFormat


def convert(context, destination: Path) -> None:
    import tensorflow as tf

    converter = context.tflite_converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = context.representative_dataset()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = tf.uint8 if context.int8_io == "uint8" else tf.int8
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    destination.write_bytes(converter.convert())


FORMAT = ExportFormat("tflite-int8", "tflite", "int8", "model_int8.tflite", True, 40, convert)
