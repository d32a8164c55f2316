"""The device side: numpy + OpenCV + LiteRT/onnxruntime, never TensorFlow.

For programs: ``device.load(bundle).classify(frame)`` (see device/api.py).
"""


def load(bundle, **options):
    """Open a bundle for :meth:`device.api.Classifier.classify` (imported lazily, so the CLI
    and the training side that import ``device.*`` modules pay nothing for it)."""
    from device.api import load as _load

    return _load(bundle, **options)
