"""The seeds' way, for comparison: a Keras model and ``model.predict`` on every frame.

Reads a video, preprocesses each frame with the same device code as the runner (so only the
inference engine differs) and prints one JSON line per frame, like ``python -m device run
--headless``. bench/run.py imports :func:`classify_video` for end-to-end throughput and runs
this file as a process for cold start and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def classify_video(model, bundle, video: str, max_frames: int | None, out) -> int:
    """Classify every frame of ``video`` with ``model.predict``; return the frame count."""
    import cv2

    from device.camera import FramePreprocessor, parse_roi

    preprocess = FramePreprocessor(bundle.preprocessing, parse_roi("0.6"))
    capture = cv2.VideoCapture(video)
    frames = 0
    while max_frames is None or frames < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        started = time.perf_counter()
        batch, _ = preprocess(frame)
        probs = model.predict(batch, verbose=0)[0] if batch is not None else None
        label = bundle.labels[int(probs.argmax())] if probs is not None else "unsure"
        out.write(json.dumps({"frame": frames, "label": label, "latency_ms":
                              round((time.perf_counter() - started) * 1000, 3)}) + "\n")
        out.flush()
        frames += 1
    capture.release()
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model.keras")
    parser.add_argument("--bundle", required=True, help="bundle (for labels and preprocessing)")
    parser.add_argument("--video", required=True)
    parser.add_argument("--max-frames", type=int)
    args = parser.parse_args()

    from device.bundle import open_bundle
    from train.models import load_saved_model  # plain Keras loading, custom layers registered

    model = load_saved_model(args.model)
    classify_video(model, open_bundle(args.bundle, verify=False), args.video, args.max_frames,
                   sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
