"""Hand pipeline speed: per-stage latency and end-to-end fps on a 640x480 clip.

* per stage (palm detector, landmark model; full and lite; 1 and 2 threads; tflite, and onnx when
  a converted ``.onnx`` sits next to the ``.tflite``): median and p95 of the model call plus its
  pre/post-processing, on real frames;
* end to end: ``HandTracker.process`` on a training clip played as a 640x480 video (read back
  from an MJPG file), once tracking (palm detection only when the hand is lost) and once with
  the palm detector forced on every frame (``reset()`` before each frame). Reports fps and how
  often the palm detector ran.

Usage: python bench/hands_speed.py [--threads 1 2] [--variants full lite] [--clip IMG_5567_mp4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.footage import write_video  # noqa: E402
from device.hands import hand_model_path  # noqa: E402
from device.hands.clips import clip_frames, clip_order  # noqa: E402
from device.hands.landmarks import LandmarkModel  # noqa: E402
from device.hands.palm import PalmDetector  # noqa: E402
from device.hands.tracker import HandTracker  # noqa: E402
from train.data.images import source_group  # noqa: E402


def data_root() -> Path:
    import os
    for candidate in (os.environ.get("DATA_DIR"), REPO.parent / "shared" / "datasets",
                      REPO.parent.parent / "shared" / "datasets"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise SystemExit("error: datasets not found: set DATA_DIR")


def clip_video(name: str, folder: Path) -> list[np.ndarray]:
    paths = [p for p in sorted((data_root() / "handsigns" / "training").glob("*/*.jpg"))
             if source_group(p) == name]
    video = write_video(clip_frames(clip_order(paths), seed=1), folder / "clip.avi")
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def timed(call, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return {"min_ms": round(float(np.min(times)), 2),
            "median_ms": round(float(np.median(times)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2)}


def model_file(stage: str, variant: str, fmt: str) -> Path:
    path = hand_model_path(stage, variant)
    return path if fmt == "tflite" else path.with_suffix(".onnx")


def stage_latency(frames, variants, threads, formats, repeats) -> list[dict]:
    rgb = cv2.cvtColor(frames[len(frames) // 2], cv2.COLOR_BGR2RGB)
    rect = (320.0, 240.0, 300.0, 300.0, 0.3)
    rows = []
    for fmt in formats:
        for variant in variants:
            for count in threads:
                palm_file = model_file("palm", variant, fmt)
                landmark_file = model_file("landmark", variant, fmt)
                if not (palm_file.is_file() and landmark_file.is_file()):
                    continue
                palm = PalmDetector(palm_file, fmt, count)
                landmark = LandmarkModel(landmark_file, fmt, count)
                for _ in range(5):
                    palm.detect(rgb)
                    landmark.run(rgb, rect)
                rows.append({"stage": "palm", "variant": variant, "format": fmt,
                             "threads": count, **timed(lambda p=palm: p.detect(rgb), repeats)})
                rows.append({"stage": "landmark", "variant": variant, "format": fmt,
                             "threads": count,
                             **timed(lambda m=landmark: m.run(rgb, rect), repeats)})
    return rows


def end_to_end(frames, palm_variant, landmark_variant, threads, fmt, every_frame) -> dict:
    tracker = HandTracker(model_file("palm", palm_variant, fmt),
                          model_file("landmark", landmark_variant, fmt), model_format=fmt,
                          threads=threads)
    for frame in frames[:5]:
        tracker.process(frame)
    tracker.reset()
    palm_runs = kept = 0
    start = time.perf_counter()
    for frame in frames:
        if every_frame:
            tracker.reset()
        hand, info = tracker.process(frame)
        palm_runs += info["palm_ran"]
        kept += hand is not None
    seconds = time.perf_counter() - start
    return {"palm": palm_variant, "landmark": landmark_variant, "format": fmt,
            "threads": threads, "mode": "palm every frame" if every_frame else "tracking",
            "fps": round(len(frames) / seconds, 1), "palm_ran": palm_runs, "hand_kept": kept,
            "frames": len(frames)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--variants", nargs="+", default=["full", "lite"])
    parser.add_argument("--formats", nargs="+", default=["tflite", "onnx"])
    parser.add_argument("--clip", default="IMG_5567_mp4")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--loops", type=int, default=2, help="times the clip is played")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        frames = clip_video(args.clip, Path(folder)) * args.loops
    for row in stage_latency(frames, args.variants, args.threads, args.formats, args.repeats):
        print(json.dumps(row), flush=True)
    for fmt in args.formats:
        for palm_variant in args.variants:
            for landmark_variant in args.variants:
                if not model_file("palm", palm_variant, fmt).is_file():
                    continue
                for every_frame in (False, True):
                    print(json.dumps(end_to_end(frames, palm_variant, landmark_variant,
                                                max(args.threads), fmt, every_frame)),
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
