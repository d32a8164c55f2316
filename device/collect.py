"""``python -m device collect``: capture training images of one class from any source.

A countdown (live cameras), then a burst of ``--count`` images, one every ``--interval``
seconds (video time for a video file; every image of a folder), with the count on screen or,
headless, one progress line per image. Each image is the region of interest *as the camera gave
it*: raw pixels, not yet fitted to any model, so the same captures can train a 64 px and a
128 px model. The region is the frame pipeline's own (device/pipeline.py ``roi_setting``, or
with ``--bundle`` the pipeline itself), so captures are framed exactly as ``run`` frames them.

Layout, which ``python -m train images`` reads::

    OUT/<label>/<session>_0001.jpg ...      the region of interest
    OUT/<label>/full/<session>_0001.jpg     the whole frame (--full-frame)
    OUT/<label>/hand/<session>_0001.png     the hand crop (--hands, or a hands bundle)
    OUT/<label>/collect-<session>.json      the manifest: session, time, source, settings,
                                            and per image its frame, box and result record

The session id groups a burst, so the test split keeps near-identical frames of one burst on
one side. Near-duplicates (a still scene) are skipped. Every file is written atomically and the
manifest after every image, so Ctrl-C keeps a consistent capture and a full disk stops with one
line and no half-written image.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from device.atomic import write_bytes, write_json
from device.camera import parse_roi, roi_for
from device.errors import UserError
from device.result import NOTHING, UNSURE
from device.sources import open_source

#: Labels are folder names; ``none`` is the reserved "nothing in view" class. ``nothing`` and
#: ``unsure`` are answers of the result vocabulary, never classes.
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,63}$")
RESERVED = (NOTHING, UNSURE)
THUMB = 32
#: errno values meaning "no room to write": disk full, quota, file-size limit.
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass
class CollectOptions:
    """Every field is a flag of ``python -m device collect``."""

    label: str
    out: Path
    source: str = "0"
    count: int = 30
    interval: float = 0.2       # seconds between saved images (video time for a video file)
    countdown: float = 3.0      # live cameras only
    roi: str = "auto"           # as ``run --roi``: auto, full, a centre fraction, x,y,w,h
    bundle: Path | None = None  # frame with this bundle's pipeline (a hands bundle: hand crops)
    hands: str | None = None    # "full"/"lite": find hands with MediaPipe's models, no bundle
    full_frame: bool = False    # also save the whole frame
    min_change: float = 2.0     # mean gray-level change (32x32 thumbnail) below = near-duplicate
    headless: bool = False
    image_format: str = "jpg"   # jpg (quality 95) or png (lossless)
    width: int | None = None
    height: int | None = None
    fps: float | None = None


@dataclass
class Capture:
    """The session's manifest, rewritten after every saved image."""

    session: str
    label: str
    source: str
    settings: dict
    started: str
    finished: str | None = None
    stopped: str = "running"
    frame_size: list[int] | None = None
    files: list[dict] = field(default_factory=list)
    skipped_near_duplicates: int = 0
    skipped_no_subject: int = 0


def check_label(label: str) -> str:
    if label.lower() in RESERVED:
        raise UserError(f"--label {label!r} is an answer of the runner, not a class: for "
                        "'nothing in view' use --label none")
    if not LABEL.match(label) or label in (".", ".."):
        raise UserError(f"--label {label!r} is not usable as a folder name: use letters, digits, "
                        "'_', '-', '.' or spaces (e.g. --label thumbs_up)")
    return label


def new_session() -> str:
    """``YYYYmmdd-HHMMSS-xxxx``: sortable by time, unique across machines."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def thumbnail(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


def encode(image: np.ndarray, image_format: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    ok, data = cv2.imencode(f".{image_format}", image, params)
    if not ok:
        raise UserError(f"OpenCV cannot encode a {image_format} image: try --format png")
    return data.tobytes()


class Collector:
    """Source -> region of interest -> files + manifest, until ``count`` images or the end."""

    def __init__(self, options: CollectOptions, log=None):
        self.options = options
        self.label = check_label(options.label)
        if options.image_format not in ("jpg", "png"):
            raise UserError(f"--format {options.image_format}: choose jpg or png")
        if options.interval < 0 or options.countdown < 0 or options.min_change < 0:
            raise UserError("--interval, --countdown and --min-change cannot be negative")
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        if not options.headless:
            from device.runner import has_gui
            if not has_gui():
                raise UserError("this OpenCV build has no window support: use --headless, or "
                                "pip install opencv-python (not -headless) for the window")
        self.folder = Path(options.out).expanduser() / self.label
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {self.folder} ({exc.strerror}): pick a writable "
                            "--out folder") from None
        from device.runner import is_still
        self.still = is_still(options.source)
        self.pipeline = None
        self.tracker = None
        self._hand_crop: np.ndarray | None = None
        if options.bundle is not None and options.hands:
            raise UserError("--bundle and --hands both choose how hands are found: give one")
        if options.bundle is not None:
            from device.bundle import open_bundle
            from device.pipeline import FramePipeline

            kind = (open_bundle(options.bundle, verify=False).metadata.get("pipeline")
                    or {}).get("kind", "image")
            # Captures are a few frames a second apart: hands are found afresh in each (as in
            # a photo), not tracked from a frame that was never looked at.
            self.pipeline = FramePipeline(options.bundle, roi=options.roi,
                                          still=self.still or kind == "hands", threshold=0.0)
        elif options.hands:
            self.tracker = hand_tracker(options.hands)
        from device.pipeline import roi_setting
        # Hands are searched in the whole frame unless --roi bounds the search (as run does).
        hands = self.tracker is not None or (self.pipeline is not None and
                                             self.pipeline.kind == "hands")
        auto = "full" if hands and options.roi in (None, "auto") else options.roi
        camera = self.pipeline.bundle.preprocessing.get("camera") if self.pipeline else None
        self.roi = parse_roi(roi_setting(auto, self.still, camera))
        self.source = open_source(options.source, options.width, options.height, options.fps)
        self.session = new_session()
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()
                    if k not in ("label", "out", "source", "headless")}
        self.capture = Capture(self.session, self.label, str(options.source), settings,
                               dt.datetime.now().astimezone().isoformat(timespec="seconds"))
        self.manifest = self.folder / f"collect-{self.session}.json"
        self._last_thumb: np.ndarray | None = None

    # --- what to save -----------------------------------------------------------------------

    def region(self, frame: np.ndarray) -> tuple[np.ndarray | None, dict]:
        """The region of interest (raw pixels) and its manifest details; None: nothing to save
        (a hands bundle found no hand)."""
        if self.tracker is not None:
            return self.hand_region(frame)
        if self.pipeline is None:
            roi = roi_for(frame.shape, self.roi)
            return roi.cut(frame), {"box": [roi.x, roi.y, roi.width, roi.height]}
        result = self.pipeline(frame)
        record = result.to_json()
        details = {"box": record["box"], "result": record}
        if self.pipeline.kind == "hands":
            if record.get("hand") is None:
                return None, details
            roi = roi_for(frame.shape, self.roi)  # the search region, as run sees it
            return roi.cut(frame), details
        x, y, w, h = record["box"]
        return frame[y:y + h, x:x + w], details

    def hand_region(self, frame: np.ndarray) -> tuple[np.ndarray | None, dict]:
        """The search region when the tracker finds a hand in it (None otherwise), with the
        hand's record (landmarks in frame pixels, as the result record's ``hand``)."""
        roi = roi_for(frame.shape, self.roi)
        self.tracker.roi = None if self.roi == "full" else roi
        hand, _ = self.tracker.process(frame)
        box = [roi.x, roi.y, roi.width, roi.height]
        if hand is None:
            self._hand_crop = None
            return None, {"box": box}
        self._hand_crop = hand.crop
        return roi.cut(frame), {"box": box, "hand": hand.to_json(),
                                "hand_box": [int(round(v)) for v in hand.box]}

    def is_near_duplicate(self, image: np.ndarray) -> bool:
        thumb = thumbnail(image)
        if self._last_thumb is not None and self._last_thumb.shape == thumb.shape and \
                float(np.mean(np.abs(thumb - self._last_thumb))) < self.options.min_change:
            return True
        self._last_thumb = thumb
        return False

    def save(self, frame: np.ndarray, image: np.ndarray, details: dict, frame_index: int,
             seconds: float) -> Path:
        """Write the image (and the full frame / hand crop), then the manifest; atomically."""
        index = len(self.capture.files) + 1
        name = f"{self.session}_{index:04d}.{self.options.image_format}"
        entry = {"file": name, "frame": frame_index, "time_s": round(seconds, 3), **details}
        writes = [(self.folder / name, image)]
        if self.options.full_frame:
            entry["full"] = f"full/{name}"
            writes.append((self.folder / "full" / name, frame))
        crop = self._hand_crop if self.tracker is not None else (
            self.pipeline.inset if self.pipeline is not None and self.pipeline.kind == "hands"
            else None)
        if crop is not None:
            entry["hand_crop"] = f"hand/{Path(name).stem}.png"
            writes.append((self.folder / entry["hand_crop"],
                           cv2.cvtColor(crop, cv2.COLOR_RGB2BGR) if crop.ndim == 3 else crop))
        written: list[Path] = []
        self.capture.files.append(entry)
        try:
            for path, picture in writes:
                fmt = "png" if path.suffix == ".png" else self.options.image_format
                self.write(path, encode(picture, fmt))
                written.append(path)
            self.write_manifest()
        except DiskFull:
            # All of this image or none of it: the manifest lists exactly what is on disk.
            self.capture.files.pop()
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return self.folder / name

    def write(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, data)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise DiskFull(path) from None
            raise UserError(f"cannot write {path} ({exc.strerror}): pick a writable --out "
                            "folder") from None

    def write_manifest(self) -> None:
        try:
            write_json(self.manifest, asdict(self.capture))
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise DiskFull(self.manifest) from None
            raise

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> Capture:
        """Capture until ``count`` images, the source's end, ``q`` or Ctrl-C; never loses what
        was saved (the manifest always lists exactly the images on disk).

        Ctrl-C only raises a flag: the image being written is finished, with its manifest
        entry, before the loop stops (a second Ctrl-C stops at once)."""
        self._interrupted = False
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._interrupt)
        try:
            return self._run()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _interrupt(self, signum, frame) -> None:
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True

    def _run(self) -> Capture:
        options = self.options
        live = bool(getattr(self.source, "live", False))
        fps = float(getattr(self.source, "fps", 0.0) or 30.0)
        started = time.monotonic()
        countdown_until = started + (options.countdown if live else 0.0)
        last_saved = -float("inf")
        frame_index = -1
        announced = -1
        self.log(f"collect: {options.count} images of {self.label!r} -> {self.folder} "
                 f"(session {self.session})")
        try:
            while len(self.capture.files) < options.count:
                if self._interrupted:
                    raise KeyboardInterrupt
                item = self.source.read()
                if item is None:
                    self.capture.stopped = "source ended"
                    break
                frame, _ = item
                frame_index += 1
                if self.capture.frame_size is None:
                    self.capture.frame_size = [int(frame.shape[1]), int(frame.shape[0])]
                now = time.monotonic()
                seconds = (now - started) if live else (frame_index / fps)
                waiting = now < countdown_until
                if waiting:
                    left = int(np.ceil(countdown_until - now))
                    if left != announced and options.headless:
                        self.log(f"collect: starting in {left}")
                    announced = left
                elif self.still or seconds - last_saved >= options.interval - 1e-9:
                    self.consider(frame, frame_index, seconds)
                    if len(self.capture.files) and self.capture.files[-1]["frame"] == frame_index:
                        last_saved = seconds
                if not options.headless and self.show(frame, waiting, countdown_until - now):
                    self.capture.stopped = "quit"
                    break
            else:
                self.capture.stopped = "done"
        except KeyboardInterrupt:
            self.capture.stopped = "interrupted"
        except DiskFull as full:
            self.capture.stopped = "disk full"
            self.finish(quietly=True)
            raise UserError(f"disk full while writing {full.path}: stopped; the "
                            f"{len(self.capture.files)} image(s) saved before are complete and "
                            f"listed in {self.manifest.name}; free some space and collect again"
                            ) from None
        self.finish()
        return self.capture

    def consider(self, frame: np.ndarray, frame_index: int, seconds: float) -> None:
        image, details = self.region(frame)
        if image is None or image.size == 0:
            self.capture.skipped_no_subject += 1
            return
        if self.is_near_duplicate(image):
            self.capture.skipped_near_duplicates += 1
            return
        path = self.save(frame, image, details, frame_index, seconds)
        if self.options.headless:
            self.log(f"collect: {self.label} {len(self.capture.files)}/{self.options.count} "
                     f"-> {path.name}")

    def show(self, frame: np.ndarray, waiting: bool, left: float) -> bool:
        """The live view: the region being captured, the count, the countdown. ``q`` stops."""
        canvas = frame.copy()
        roi = roi_for(frame.shape, self.roi)
        colour = (0, 190, 255) if waiting else (80, 200, 80)
        cv2.rectangle(canvas, (roi.x, roi.y), (roi.x + roi.width, roi.y + roi.height), colour, 2)
        scale = max(0.5, frame.shape[0] / 640)
        line = f"{self.label}: {len(self.capture.files)}/{self.options.count}"
        for thickness, shade in ((4, (0, 0, 0)), (1, (255, 255, 255))):
            cv2.putText(canvas, line, (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                        scale * 0.9, shade, thickness, cv2.LINE_AA)
            if waiting:
                cv2.putText(canvas, str(int(np.ceil(left))),
                            (frame.shape[1] // 2 - int(30 * scale), frame.shape[0] // 2),
                            cv2.FONT_HERSHEY_SIMPLEX, scale * 4, shade, thickness * 2,
                            cv2.LINE_AA)
        cv2.imshow("edgekit collect", canvas)
        return (cv2.waitKey(1) & 0xFF) == ord("q")

    def finish(self, quietly: bool = False) -> None:
        self.capture.finished = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            self.source.close()
            if not self.options.headless:
                cv2.destroyAllWindows()
            if self.capture.files or self.manifest.exists():
                self.write_manifest()
        except (OSError, DiskFull):
            if not quietly:
                raise
        if not quietly:
            skipped = self.capture.skipped_near_duplicates
            extra = f", {skipped} near-duplicate frame(s) skipped" if skipped else ""
            if self.capture.skipped_no_subject:
                extra += f", {self.capture.skipped_no_subject} frame(s) without a subject skipped"
            print(f"collect: {self.capture.stopped}: {len(self.capture.files)} image(s) of "
                  f"{self.label!r} in {self.folder} (session {self.session}{extra})", flush=True)


def hand_tracker(variant: str):
    """The device's hand tracker on MediaPipe's pinned models (``python -m hand_models
    fetch``), for capturing gestures before any gesture bundle exists."""
    try:
        import hand_models
    except ImportError:
        raise UserError("--hands needs the toolkit's hand_models package (a laptop checkout); "
                        "on a device, pass --bundle with a hands bundle instead") from None
    from device.hands.tracker import HandTracker

    palm = hand_models.model_path("palm", variant)
    landmark = hand_models.model_path("landmark", variant)
    return HandTracker(palm, landmark, model_format="tflite", threads=2, roi=None, still=True)


class DiskFull(Exception):
    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path


def collect(options: CollectOptions, log=None) -> Capture:
    return Collector(options, log).run()
