"""Hand landmarks of every photo, found once by the device's own hand tracker and cached.

Training, export (calibration, the report) and the tests all need the landmarks of the same
~2,100 photos; finding them costs tens of milliseconds a photo, so each photo's result is kept
under ``.cache/landmarks/`` keyed by the SHA-256 of the photo's bytes. The cache file is named
after a fingerprint of everything that decides the answer (the tracker's source, the model
files' checksums, the settings): change any of them and the landmarks are found afresh, never
mixed with stale ones. A photo where no hand is found is cached too, as "not found".
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.atomic import atomic_path
from device.errors import UserError
from device.hands.tracker import DEFAULT_THRESHOLDS, max_views

REPO = Path(__file__).resolve().parents[1]
#: The tracker's settings for still photos: every photo on its own, the whole photo searched.
SETTINGS = {"still": True, "roi": None, "model_format": "tflite"}


def cache_root() -> Path:
    """``$EDGEKIT_LANDMARK_CACHE`` or ``.cache/landmarks`` in the checkout (gitignored)."""
    value = os.environ.get("EDGEKIT_LANDMARK_CACHE")
    return Path(value).expanduser() if value else REPO / ".cache" / "landmarks"


@dataclass
class PhotoLandmarks:
    """Per photo: whether a hand was found and, if so, its landmarks (zeros where not)."""

    found: np.ndarray        # (N,) bool
    landmarks: np.ndarray    # (N, 21, 3) float32, frame pixels
    world: np.ndarray        # (N, 21, 3) float32, metres
    presence: np.ndarray     # (N,) float32
    handedness: np.ndarray   # (N,) "left" / "right" / "" (not found)
    box: np.ndarray          # (N, 4) float32 [x, y, w, h] frame pixels
    # Every accepted view of the hand (device.hands.tracker Hand.views), padded with presence 0
    view_landmarks: np.ndarray   # (N, MAX_VIEWS, 21, 3) float32
    view_handedness: np.ndarray  # (N, MAX_VIEWS)
    view_presence: np.ndarray    # (N, MAX_VIEWS) float32; 0 = no view

    def subset(self, index) -> PhotoLandmarks:
        return PhotoLandmarks(*(getattr(self, name)[index] for name in FIELDS))

    @property
    def missing(self) -> int:
        return int(np.sum(~self.found))

    def views(self, rows=None, limit: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features of every view of the found photos among ``rows`` (default: all): (M, 63)
        features, (M,) the position in ``rows`` each belongs to, (M,) presence weights. A
        photo with no stored views contributes its chosen hand; ``limit`` keeps at most that
        many views of a photo, the first in the tracker's order."""
        from device.hands.features import features_batch

        rows = np.arange(len(self.found)) if rows is None else np.asarray(rows)
        landmarks, handedness, weights, owner = [], [], [], []
        for position, row in enumerate(rows):
            if not self.found[row]:
                continue
            kept = np.flatnonzero(self.view_presence[row] > 0)[:limit]
            if len(kept):
                landmarks.append(self.view_landmarks[row, kept])
                handedness += list(self.view_handedness[row, kept])
                weights.append(self.view_presence[row, kept])
            else:
                landmarks.append(self.landmarks[row][None])
                handedness.append(self.handedness[row])
                weights.append(self.presence[row][None])
            owner += [position] * len(weights[-1])
        if not landmarks:
            return np.zeros((0, 63), np.float32), np.zeros(0, int), np.zeros(0, np.float32)
        return (features_batch(np.concatenate(landmarks), handedness), np.array(owner),
                np.concatenate(weights).astype(np.float32))

    def fused_probs(self, predict, rows=None) -> np.ndarray:
        """Per found photo among ``rows``, in order: its views' class probabilities from
        ``predict`` ((M, 63) -> (M, C)) fused as the device fuses them."""
        from device.hands.features import fuse

        x, owner, weights = self.views(rows)
        if not len(x):
            return np.zeros((0, 0), np.float32)
        probs = np.asarray(predict(x))
        return np.stack([fuse(probs[owner == k], weights[owner == k])
                         for k in np.unique(owner)]).astype(np.float32)


FIELDS = ("found", "landmarks", "world", "presence", "handedness", "box", "view_landmarks",
          "view_handedness", "view_presence")
#: Views kept per photo: all the default tracker can give (the device fuses every one).
MAX_VIEWS = max_views(DEFAULT_THRESHOLDS)


def empty(count: int) -> PhotoLandmarks:
    return PhotoLandmarks(np.zeros(count, bool), np.zeros((count, 21, 3), np.float32),
                          np.zeros((count, 21, 3), np.float32), np.zeros(count, np.float32),
                          np.full(count, "", dtype="<U5"), np.zeros((count, 4), np.float32),
                          np.zeros((count, MAX_VIEWS, 21, 3), np.float32),
                          np.full((count, MAX_VIEWS), "", dtype="<U5"),
                          np.zeros((count, MAX_VIEWS), np.float32))


def tracker_fingerprint(model_paths: dict[str, Path], settings: dict) -> str:
    """Hash of the tracker's code (``device/hands/*.py`` but the features and the threshold
    validation), the model files and
    the settings: the landmarks a photo gets depend on exactly these."""
    from device.bundle import sha256_of

    digest = hashlib.sha256()
    hands = REPO / "device" / "hands"
    for path in sorted(hands.glob("*.py")):
        if path.name not in ("features.py", "validate.py"):  # neither changes a landmark
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    for stage, path in sorted(model_paths.items()):
        digest.update(f"{stage}={sha256_of(path)}".encode())
    digest.update(repr(sorted(settings.items())).encode())
    return digest.hexdigest()[:16]


def record_hand(result: PhotoLandmarks, i: int, hand) -> None:
    """Copy one tracked hand (device.hands Hand) into row ``i``."""
    result.found[i] = True
    result.landmarks[i] = np.asarray(hand.landmarks, np.float32).reshape(21, 3)
    world = getattr(hand, "world", None)
    if world is not None:
        result.world[i] = np.asarray(world, np.float32).reshape(21, 3)
    result.presence[i] = float(getattr(hand, "presence", 1.0))
    result.handedness[i] = str(hand.handedness).lower()
    box = getattr(hand, "box", None)
    if box is not None:
        result.box[i] = np.asarray(box, np.float32)[:4]
    for v, (landmarks, handedness, presence) in enumerate(
            (getattr(hand, "views", None) or [])[:MAX_VIEWS]):
        result.view_landmarks[i, v] = np.asarray(landmarks, np.float32).reshape(21, 3)
        result.view_handedness[i, v] = str(handedness).lower()
        result.view_presence[i, v] = float(presence)


def load_table(path: Path) -> dict[str, tuple]:
    """The cache file as {photo sha256: row values}; empty when absent or unreadable."""
    if not path.is_file():
        return {}
    try:
        with np.load(path) as archive:
            keys = archive["keys"]
            columns = [archive[name] for name in FIELDS]
    except (OSError, ValueError, KeyError):
        return {}
    return {str(key): tuple(column[i] for column in columns) for i, key in enumerate(keys)}


def save_table(path: Path, table: dict[str, tuple]) -> None:
    keys = sorted(table)
    columns = {name: np.stack([table[key][j] for key in keys]) for j, name in enumerate(FIELDS)}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, keys=np.array(keys), **columns)


def photo_hash(path: Path) -> tuple[str, bytes]:
    data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest(), data


def extract(paths: list[Path], make_tracker: Callable[[], object], fingerprint: str,
            root: Path | None = None, log_every: int = 250) -> PhotoLandmarks:
    """Landmarks for ``paths`` (cached ones read back, the rest tracked and added).

    ``make_tracker()`` builds a device-side tracker (``process(bgr) -> (hand | None, info)``),
    only when some photo is not cached yet; it is reset before every photo (still images)."""
    import cv2

    path = (root or cache_root()) / f"{fingerprint}.npz"
    table = load_table(path)
    result = empty(len(paths))
    todo = []
    for i, photo in enumerate(paths):
        key, data = photo_hash(photo)
        if key in table:
            for name, value in zip(FIELDS, table[key]):
                getattr(result, name)[i] = value
        else:
            todo.append((i, key, data))
    if not todo:
        return result
    print(f"landmarks: finding hands in {len(todo)} photo(s) (cached: {len(paths) - len(todo)}) "
          f"-> {path}", flush=True)
    tracker = make_tracker()
    started = time.time()
    for done, (i, key, data) in enumerate(todo, start=1):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"cannot decode image {paths[i]}: remove or replace it")
        if hasattr(tracker, "reset"):
            tracker.reset()
        hand, _ = tracker.process(image)
        if hand is not None:
            record_hand(result, i, hand)
        table[key] = tuple(getattr(result, name)[i] for name in FIELDS)
        if done % log_every == 0:
            print(f"landmarks: {done}/{len(todo)} ({time.time() - started:.0f} s)", flush=True)
    save_table(path, table)
    return result


def model_format(path: Path) -> str:
    return "onnx" if Path(path).suffix == ".onnx" else "tflite"


def hand_tracker_factory(palm: Path, landmark: Path, threads: int = 2) -> Callable[[], object]:
    """Builds the device's HandTracker in still-image mode on the given model files (each stage
    in its own format: ``.tflite`` or ``.onnx``)."""
    def make():
        from device.hands.tracker import HandTracker

        return HandTracker(palm, landmark, model_format=model_format(landmark),
                           palm_format=model_format(palm), threads=threads,
                           roi=SETTINGS["roi"], still=SETTINGS["still"])
    return make


def stage_landmarks(paths: list[Path], palm: Path, landmark: Path,
                    root: Path | None = None) -> PhotoLandmarks:
    """Landmarks of ``paths`` with any pair of stage model files (the export compares
    quantised and converted stages with the float ones), cached like the training ones."""
    formats = {model_format(palm), model_format(landmark)}
    # Two .tflite files are what photo_landmarks runs: the same fingerprint for the same files,
    # so the float pipeline's check reads the photos' cached landmarks instead of re-finding them.
    settings = SETTINGS if formats == {"tflite"} else {**SETTINGS,
                                                       "model_format": "+".join(sorted(formats))}
    fingerprint = tracker_fingerprint({"palm": palm, "landmark": landmark}, settings)
    return extract(paths, hand_tracker_factory(palm, landmark), fingerprint, root)


def photo_landmarks(paths: list[Path], variant: str = "full",
                    make_tracker: Callable[[], object] | None = None,
                    root: Path | None = None) -> tuple[PhotoLandmarks, dict]:
    """Landmarks of ``paths`` with the pinned MediaPipe models (``full`` or ``lite``) and the
    device tracker; returns them and a description of how they were found (for metrics)."""
    import hand_models

    models = {stage: hand_models.model_path(stage, variant) for stage in ("palm", "landmark")}
    fingerprint = tracker_fingerprint(models, SETTINGS)  # the models' hashes name the variant
    factory = make_tracker or hand_tracker_factory(models["palm"], models["landmark"])
    found = extract(paths, factory, fingerprint, root)
    return found, {"fingerprint": fingerprint, "variant": variant, **SETTINGS,
                   "models": {stage: path.name for stage, path in models.items()}}
