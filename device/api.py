"""The Python API, for programs that embed the classifier: three lines.

    import device
    classifier = device.load("artifacts/digits/bundle")
    label, score, extras = classifier.classify(frame_bgr)

``label`` is a class, ``"nothing"`` or ``"unsure"`` (docs/contracts.md); ``extras`` is the
whole result record (reason, guess, top-3, box, hand landmarks, timings). It runs the same
frame pipeline as ``python -m device run``, so a program gets exactly the runner's answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.errors import UserError
from device.pipeline import FramePipeline


class Classifier:
    """A bundle, loaded once; :meth:`classify` takes one BGR frame (as OpenCV reads it)."""

    def __init__(self, bundle: str | Path, model: str | None = None, threads: int = 2,
                 roi: str = "auto", video: bool = False, threshold: float | None = None):
        self.pipeline = FramePipeline(bundle, model, threads, roi, smoothing=video,
                                      threshold=threshold, still=not video)

    @property
    def labels(self) -> list[str]:
        return self.pipeline.labels

    def classify(self, frame_bgr: np.ndarray) -> tuple[str, float, dict]:
        """(label, score, the full result record) for one frame."""
        check_frame(frame_bgr)
        record = self.pipeline(frame_bgr).to_json()
        return record["label"], record["score"], record


def check_frame(frame) -> None:
    """A frame OpenCV failed to read arrives as None: say so, instead of an error deep inside."""
    if frame is None:
        raise UserError("classify() got None instead of a frame: the image or camera frame was "
                        "not read (check the path given to cv2.imread, or VideoCapture.read's ok)")
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0 or \
            (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        shape = getattr(frame, "shape", type(frame).__name__)
        raise UserError(f"classify() takes a BGR image as OpenCV gives it (height x width x 3, "
                        f"uint8); got {shape}")


def load(bundle: str | Path, **options) -> Classifier:
    """Open ``bundle`` (checksums verified). ``video=True`` for a stream of related frames
    (smoothing and hand tracking on); the default treats each frame as its own photo."""
    return Classifier(bundle, **options)
