"""The hand pipeline: MediaPipe's palm detector and hand landmark models, run with numpy,
OpenCV and LiteRT / onnxruntime only (no mediapipe package on the device).

``HandTracker`` (``device.hands.tracker``) is the entry point: a BGR frame in, the chosen
``Hand`` (21 landmarks in frame pixels, presence, handedness, the crop) out.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HAND_MODELS = "/work/cache/hand_models"


def hand_models_dir() -> Path:
    """Where the fetched MediaPipe hand models live: ``$EDGEKIT_HAND_MODELS`` or the set-up cache.
    The one place that knows it, so the fetcher can take the location over."""
    return Path(os.environ.get("EDGEKIT_HAND_MODELS") or DEFAULT_HAND_MODELS)


def hand_model_path(stage: str, variant: str = "full") -> Path:
    """``palm`` / ``landmark`` and ``full`` / ``lite`` -> the .tflite file in the cache."""
    names = {"palm": "palm_detection", "landmark": "hand_landmark"}
    return hand_models_dir() / f"{names[stage]}_{variant}.tflite"
