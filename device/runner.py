"""The live loop: source -> ROI preprocessing -> model -> smoothing -> window / JSON lines / video.

Built once, before the first frame: the bundle is opened (the chosen model's checksum verified),
the interpreter created with its thread count, the source opened. Per frame only the ROI is
preprocessed and one inference runs.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from device.backends import load_classifier
from device.bundle import open_bundle
from device.camera import FramePreprocessor, parse_roi
from device.errors import UserError
from device.overlay import visualize
from device.smoothing import UNSURE, ExponentialVote, gate
from device.sources import open_source


@dataclass
class RunOptions:
    """How to run; every field is a CLI flag of ``python -m device run``."""

    bundle: Path
    source: str
    model: str | None = None          # e.g. "tflite-int8"; default: the bundle's best int8
    threads: int = 2                  # interpreter threads, fixed when it is built
    roi: str = "auto"                 # "auto", "full", a centre-box fraction, or "x,y,w,h"
    headless: bool = False            # JSON lines on stdout instead of a window
    save: Path | None = None          # record the annotated stream here (.mp4 / .avi)
    smoothing: bool | None = None     # default: on for live sources and videos, off for folders
    alpha: float = 0.4                # weight of the newest frame in the moving average
    threshold: float = 0.6            # below this smoothed/raw score the label is "unsure"
    max_frames: int | None = None     # stop after this many frames
    width: int | None = None          # camera resolution / fps requests
    height: int | None = None
    fps: float | None = None


def has_gui() -> bool:
    """opencv-python-headless (the device default) has no window support."""
    info = cv2.getBuildInformation()
    gui = [line for line in info.splitlines() if line.strip().startswith("GUI:")]
    return bool(gui) and "NONE" not in gui[0].upper()


def default_roi(source) -> str:
    """Image folders are usually already-cropped photos: classify the whole image. A camera or a
    video shows a scene: classify the centre box the user holds the subject in."""
    return "full" if source.__class__.__name__ == "ImageFolderSource" else "0.6"


class Runner:
    def __init__(self, options: RunOptions, out: TextIO = sys.stdout):
        self.options = options
        self.out = out
        if options.threads < 1:
            raise UserError("--threads must be at least 1")
        if not options.headless and not has_gui():
            raise UserError("this OpenCV build has no window support: use --headless, or "
                            "pip install opencv-python (not -headless) for the window")
        # One OpenCV thread: each frame's images are tiny (a 64 px work size for digits), so
        # the thread pool's hand-off costs more than it saves, and the second core is already
        # busy decoding the next frame. Measured on 2 cores: digits 868 -> 1043 fps end to end,
        # hand signs unchanged; the output is bit-identical.
        cv2.setNumThreads(1)
        probe = open_bundle(options.bundle, verify=False)
        self.model_key = probe.choose(options.model)
        self.bundle = open_bundle(options.bundle, keys=[self.model_key])
        entry = self.bundle.models[self.model_key]
        self.classifier = load_classifier(self.bundle.model_path(self.model_key), entry["format"],
                                          options.threads)
        self.labels = self.bundle.labels
        self.source = open_source(options.source, options.width, options.height, options.fps)
        roi = options.roi if options.roi != "auto" else default_roi(self.source)
        self.preprocess = FramePreprocessor(self.bundle.preprocessing, parse_roi(roi))
        smoothing = options.smoothing
        if smoothing is None:
            smoothing = self.source.__class__.__name__ != "ImageFolderSource"
        self.vote = ExponentialVote(self.labels, options.alpha, options.threshold) \
            if smoothing else None
        self.writer = None

    def classify(self, frame: np.ndarray) -> dict:
        """One frame -> its result record (also what ``--headless`` prints)."""
        started = time.perf_counter()
        batch, roi = self.preprocess(frame)
        inference_started = time.perf_counter()
        probs = self.classifier.predict(batch)[0] if batch is not None else None
        finished = time.perf_counter()
        if probs is None:
            label, score = UNSURE, 0.0
        else:
            best = int(np.argmax(probs))
            label, score = self.labels[best], float(probs[best])
        record = {"label": gate(label, score, self.options.threshold) if probs is not None
                  else UNSURE,
                  "raw_label": label, "score": round(score, 4),
                  "latency_ms": round((finished - inference_started) * 1000, 3),
                  "preprocess_ms": round((inference_started - started) * 1000, 3)}
        if self.vote is not None:
            smoothed, smoothed_score = self.vote.update(probs)
            record["smoothed_label"] = smoothed
            record["smoothed_score"] = round(smoothed_score, 4)
        record["_roi"] = roi
        return record

    def run(self) -> int:
        """Process frames until the source ends, ``max_frames``, or ``q`` in the window."""
        fps_window: deque[float] = deque(maxlen=10)
        frames = 0
        last = time.perf_counter()
        try:
            while self.options.max_frames is None or frames < self.options.max_frames:
                item = self.source.read()
                if item is None:
                    break
                frame, name = item
                record = self.classify(frame)
                roi = record.pop("_roi")
                now = time.perf_counter()
                fps_window.append(now - last)
                last = now
                fps = len(fps_window) / max(sum(fps_window), 1e-9)
                if self.options.headless:
                    line = {"frame": frames, "source": name, "model": self.model_key, **record}
                    self.out.write(json.dumps(line) + "\n")
                if self.options.save or not self.options.headless:
                    shown = {"label": record.get("smoothed_label", record["label"]),
                             "score": record.get("smoothed_score", record["score"]),
                             "box": [roi.x, roi.y, roi.width, roi.height],
                             "latency_ms": record["latency_ms"],
                             "preprocess_ms": record["preprocess_ms"]}
                    annotated = visualize(frame, shown, fps)
                    self._save(annotated)
                    if not self.options.headless and self._show(annotated):
                        break
                frames += 1
        finally:
            self.close()
        if self.options.headless:
            self.out.flush()
        return frames

    def _save(self, frame: np.ndarray) -> None:
        if not self.options.save:
            return
        if self.writer is None:
            path = Path(self.options.save)
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
            fps = getattr(self.source, "fps", 0.0) or 15.0
            self.writer = cv2.VideoWriter(str(path), fourcc, fps, (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise UserError(f"cannot write --save {path}: use a .mp4 or .avi path in a "
                                "writable folder")
        self.writer.write(frame)

    @staticmethod
    def _show(frame: np.ndarray) -> bool:
        cv2.imshow("edgekit", frame)
        return (cv2.waitKey(1) & 0xFF) == ord("q")

    def close(self) -> None:
        self.source.close()
        if self.writer is not None:
            self.writer.release()
        if not self.options.headless:
            cv2.destroyAllWindows()
