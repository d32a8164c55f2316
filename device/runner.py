"""The live loop: source -> frame pipeline -> window / JSON lines / video / a publish hook.

Built once, before the first frame: the frame pipeline (device/pipeline.py: bundle verified,
models loaded with their thread count) and the source. Per frame the pipeline turns the frame
into one result record (device/result.py), which every output speaks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from device.bundle import open_bundle
from device.errors import UserError
from device.overlay import visualize
from device.pipeline import FramePipeline
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
    # Below this smoothed/raw score the label is "unsure"; None: the bundle's own
    # pipeline.min_confidence, else DEFAULT_MIN_CONFIDENCE (device/pipeline.py).
    threshold: float | None = None
    max_frames: int | None = None     # stop after this many frames
    width: int | None = None          # camera resolution / fps requests
    height: int | None = None
    fps: float | None = None


def has_gui() -> bool:
    """opencv-python-headless (the device default) has no window support."""
    info = cv2.getBuildInformation()
    gui = [line for line in info.splitlines() if line.strip().startswith("GUI:")]
    return bool(gui) and "NONE" not in gui[0].upper()


def installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
        return True
    except metadata.PackageNotFoundError:
        return False


#: Opens and closes one window in a child process: Qt aborts the whole process when it cannot
#: reach a display (a wrong DISPLAY, missing xcb libraries), so only a child can try it safely.
WINDOW_PROBE = ("import cv2; cv2.namedWindow('edgekit-probe'); cv2.waitKey(1); "
                "cv2.destroyAllWindows()")


def window_opens(timeout: float = 20.0) -> bool:
    try:
        probe = subprocess.run([sys.executable, "-c", WINDOW_PROBE], capture_output=True,
                               timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def window_problem(environ=os.environ, platform: str = sys.platform, gui=has_gui,
                   opens=window_opens) -> str | None:
    """Why no window can open here, or None. Checked before the first frame: with no display a
    GUI OpenCV aborts inside Qt (rc 134, no message), which no Python code can catch."""
    if not gui():
        if installed("opencv-python") and installed("opencv-python-headless"):
            return ("opencv-python and opencv-python-headless are both installed and overwrite "
                    "each other's cv2 (pip uninstall -y opencv-python-headless opencv-python, "
                    "then pip install opencv-python, or make setup-window)")
        return ("this OpenCV (opencv-python-headless) has no window support (make setup-window "
                "installs one that has)")
    linux = platform.startswith("linux")
    if linux and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set: a Pi over ssh, a service, a container)"
    if linux and not opens():
        return (f"OpenCV could not open a window on display {environ.get('DISPLAY') or '(none)'}"
                f"{'' if environ.get('DISPLAY') else ' (pip OpenCV needs X11 or XWayland)'}")
    return None


def is_still(source: str) -> bool:
    """Image folders hold unrelated, usually already-cropped photos: each is classified whole and
    on its own (no smoothing, no tracking). A camera or a video shows a scene over time."""
    from device.sources.folder import IMAGE_SUFFIXES

    path = Path(str(source)).expanduser()
    return path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


class Runner:
    """``publish(frame, annotated, record, fps)``, when given, receives every frame's outcome
    (``serve`` streams it); ``annotated`` is None unless a window, ``--save`` or the hook asked
    for drawing (``wants_annotated``). ``out`` None: headless without JSON lines (``serve``)."""

    def __init__(self, options: RunOptions, out: TextIO = sys.stdout, publish=None,
                 wants_annotated: bool = False):
        self.options = options
        self.out = out
        self.publish = publish
        self.wants_annotated = wants_annotated
        if options.threads < 1:
            raise UserError("--threads must be at least 1")
        problem = None if options.headless else window_problem()
        if problem:
            raise UserError(f"cannot open a window: {problem}; watch in a browser instead with "
                            "`python -m device serve` (same options), or use --headless for "
                            "JSON lines")
        # One OpenCV thread: each frame's images are tiny (a 64 px work size for digits), so
        # the thread pool's hand-off costs more than it saves, and the second core is already
        # busy decoding the next frame. Measured on 2 cores: digits 868 -> 1043 fps end to end,
        # hand signs unchanged; the output is bit-identical.
        cv2.setNumThreads(1)
        still = is_still(options.source)
        smoothing = options.smoothing if options.smoothing is not None else not still
        # The bundle's metadata, then the source, then the models: a bad bundle, model key,
        # camera or file is one error line, before the model runtime prints anything.
        open_bundle(options.bundle, verify=False).choose(options.model)
        self.source = open_source(options.source, options.width, options.height, options.fps)
        try:
            self.pipeline = FramePipeline(options.bundle, options.model, options.threads,
                                          options.roi, smoothing, options.alpha, options.threshold,
                                          still)
        except BaseException:
            self.source.close()
            raise
        self.model_key = self.pipeline.model_key
        self.labels = self.pipeline.labels
        self.writer = None

    def classify(self, frame: np.ndarray) -> dict:
        """One frame -> its result record (what ``--headless`` prints, less frame/source)."""
        return self.pipeline(frame).to_json()

    def run(self) -> int:
        """Process frames until the source ends, ``max_frames``, or ``q`` in the window."""
        fps_window: deque[float] = deque(maxlen=10)
        frames = 0
        last = time.perf_counter()
        drawing = bool(self.options.save or not self.options.headless or self.wants_annotated)
        try:
            while self.options.max_frames is None or frames < self.options.max_frames:
                item = self.source.read()
                if item is None:
                    break
                frame, name = item
                result = self.pipeline(frame)
                now = time.perf_counter()
                fps_window.append(now - last)
                last = now
                fps = len(fps_window) / max(sum(fps_window), 1e-9)
                record = {"frame": frames, "source": name, "model": self.model_key,
                          **result.to_json()}
                if self.options.headless and self.out is not None:
                    self.out.write(json.dumps(record) + "\n")
                annotated = None
                if drawing:
                    shown_fps = getattr(self.source, "fps", 0.0) or fps
                    annotated = visualize(frame, record, shown_fps, self.pipeline.inset)
                    self._save(annotated)
                if self.publish is not None:
                    self.publish(frame, annotated, record, fps)
                if not self.options.headless and self._show(annotated):
                    break
                frames += 1
        finally:
            self.close()
        if self.options.headless and self.out is not None:
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
