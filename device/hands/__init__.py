"""The hand pipeline: MediaPipe's palm detector and hand landmark models, run with numpy,
OpenCV and LiteRT / onnxruntime only (no mediapipe package on the device).

``HandTracker`` (``device.hands.tracker``) is the entry point: a BGR frame in, the chosen
``Hand`` (21 landmarks in frame pixels, presence, handedness, the crop) out.
"""

from __future__ import annotations

from pathlib import Path


def hand_models_dir() -> Path:
    """The verified MediaPipe hand models' folder. ``hand_models`` (top-level package) is the one
    lookup: ``$EDGEKIT_HAND_MODELS`` or its cache, each file checked against its pinned SHA-256
    (a UserError says how to fetch them). On a device the models come from the bundle instead."""
    import hand_models

    return hand_models.model_dir()


def hand_model_path(stage: str, variant: str = "full") -> Path:
    """``palm`` / ``landmark`` and ``full`` / ``lite`` -> the verified .tflite file."""
    import hand_models

    return hand_models.model_path(stage, variant)
