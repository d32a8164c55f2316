"""``python -m device bench``: how fast each model file and the whole runner are on this device.

Per-format single-image latency (median / p95) for 1..N interpreter threads, end-to-end
headless frames per second of the real runner on a 640x480 video (``--video``, or footage made
from the bundle's own sample images when none is given), and the camera step alone per frame
(median / p95 ms) with the runner's defaults for a live source and for an image folder. Prints a table; ``--json`` for tools.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from device.backends import load_classifier
from device.bundle import open_bundle
from device.check import load_samples


def latency(classifier, sample: np.ndarray, runs: int, warmup: int = 10) -> dict:
    for _ in range(warmup):
        classifier.predict(sample)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        classifier.predict(sample)
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}


def sample_footage(bundle, folder: Path, frames: int = 120) -> Path:
    """A 640x480 video of the bundle's sample images as a camera would see them."""
    from device.footage import bundle_footage, write_video

    rendered = bundle_footage(bundle, frames)
    return write_video(rendered, folder / "bench_footage.avi")


def end_to_end_fps(bundle_dir: Path, video: Path, model: str, threads: int) -> dict:
    """Frames per second of the headless runner on ``video`` (JSON lines to /dev/null)."""
    from device.runner import Runner, RunOptions

    with open(os.devnull, "w") as sink:
        runner = Runner(RunOptions(bundle=bundle_dir, source=str(video), model=model,
                                   threads=threads, headless=True), out=sink)
        started = time.perf_counter()
        frames = runner.run()
        elapsed = time.perf_counter() - started
    return {"model": model, "threads": threads, "frames": frames,
            "fps": frames / elapsed if elapsed else 0.0, "ms_per_frame": 1000 * elapsed / frames}


def read_frames(video: Path, limit: int = 120) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def preprocess_times(bundle_dir: Path, video: Path, model: str) -> list[dict]:
    """The camera step alone (ROI, locator or ink step, resize; no model) per frame, with the
    runner's defaults for a live source and for an image folder. One OpenCV thread, as the
    runner uses."""
    import cv2

    from device.pipeline import FramePipeline

    cv2.setNumThreads(1)
    frames = read_frames(video)
    rows = []
    for name, still in (("live source", False), ("image folder", True)):
        stage = FramePipeline(bundle_dir, model, threads=1, still=still).stage
        for frame in frames[:10]:
            stage(frame)
        times = []
        for frame in frames:
            started = time.perf_counter()
            stage(frame)
            times.append((time.perf_counter() - started) * 1000)
        rows.append({"defaults": name, "frame": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                     "frames": len(times), "median_ms": float(np.median(times)),
                     "p95_ms": float(np.percentile(times, 95))})
    return rows


def bench(bundle_dir: Path, max_threads: int = 2, runs: int = 200, video: Path | None = None,
          models: list[str] | None = None) -> dict:
    bundle = open_bundle(bundle_dir)
    x, _ = load_samples(bundle)
    sample = x[:1]
    keys = models or list(bundle.models)
    rows = []
    for key in keys:
        entry = bundle.models[key]
        for threads in range(1, max_threads + 1):
            classifier = load_classifier(bundle.model_path(key), entry["format"], threads)
            rows.append({"model": key, "threads": threads, "bytes": entry["bytes"],
                         **latency(classifier, sample, runs)})
    with tempfile.TemporaryDirectory() as tmp:
        footage = Path(video) if video else sample_footage(bundle, Path(tmp))
        best = bundle.choose()
        e2e = [end_to_end_fps(bundle_dir, footage, best, t) for t in range(1, max_threads + 1)]
        preprocess = preprocess_times(bundle_dir, footage, best)
    return {"task": bundle.task, "latency": rows, "end_to_end": e2e, "preprocess": preprocess,
            "video": str(video) if video else "generated from the bundle's samples (640x480)"}


def format_tables(result: dict) -> str:
    lines = [f"latency per inference ({result['task']}, single image, preprocessing excluded)",
             f"{'model':<16}{'threads':>8}{'size KB':>10}{'median ms':>11}{'p95 ms':>9}"]
    for row in result["latency"]:
        lines.append(f"{row['model']:<16}{row['threads']:>8}{row['bytes'] / 1024:>10.0f}"
                     f"{row['median_ms']:>11.3f}{row['p95_ms']:>9.3f}")
    lines += ["", f"end to end, headless runner on {result['video']}",
              f"{'model':<16}{'threads':>8}{'frames':>8}{'fps':>9}{'ms/frame':>10}"]
    for row in result["end_to_end"]:
        lines.append(f"{row['model']:<16}{row['threads']:>8}{row['frames']:>8}{row['fps']:>9.1f}"
                     f"{row['ms_per_frame']:>10.3f}")
    if result.get("preprocess"):
        lines += ["", "camera step per frame (preprocessing only, one thread)",
                  f"{'defaults':<16}{'frame':>10}{'frames':>8}{'median ms':>11}{'p95 ms':>9}"]
        for row in result["preprocess"]:
            lines.append(f"{row['defaults']:<16}{row['frame']:>10}{row['frames']:>8}"
                         f"{row['median_ms']:>11.3f}{row['p95_ms']:>9.3f}")
    return "\n".join(lines)


def main(bundle_dir: Path, max_threads: int, runs: int, video: Path | None,
         models: list[str] | None, as_json: bool) -> int:
    result = bench(bundle_dir, max_threads, runs, video, models)
    print(json.dumps(result, indent=2) if as_json else format_tables(result))
    return 0
