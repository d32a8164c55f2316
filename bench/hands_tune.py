"""Tune the hand pipeline's thresholds on the clip-grouped VALIDATION split (never the test photos).

The validation split is the one ``python -m train handsigns`` holds out (``split_validation``,
fraction 0.1, seed 42, whole clips on one side). For each threshold setting it reports:

* ``still``: hands found on the validation photos as they are (``HandTracker(still=True)``), and
  how many of those the palm detector found (the rest came from the whole-image fallback);
* ``scene``: hands found when each validation photo is pasted anywhere in a 640x480 scene at
  25-75 % of the frame height: ``scene_found`` in video mode on one frame (fresh tracker: palm
  detection, one scan window), ``scene_still`` in still mode;
* ``false``: hands "found" on frames without a hand (MNIST training digits on paper and
  Fruits-360 training photos in a scene), still and video mode; the target is <= 5 %.

Usage: python bench/hands_tune.py [--variant full|lite] [--grid]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.footage import digit_on_paper, photo_in_scene  # noqa: E402
from device.hands import hand_model_path  # noqa: E402
from device.hands.clips import photo_anywhere  # noqa: E402
from device.hands.tracker import DEFAULT_THRESHOLDS, HandTracker  # noqa: E402
from device.tasks import HANDSIGNS  # noqa: E402
from train.data.images import list_images, source_group  # noqa: E402
from train.trainer import split_validation  # noqa: E402

DATA = Path(__import__("os").environ.get("DATA_DIR") or REPO.parent.parent / "shared" / "datasets")


def validation_paths(data: Path, fraction: float = 0.1, seed: int = 42) -> list[Path]:
    """The training photos ``split_validation`` puts on the validation side (same order, labels
    and groups as ``handsigns.load_folders``)."""
    paths, labels = [], []
    for index, name in enumerate(HANDSIGNS):
        found = list_images(data / "handsigns" / "training" / name)
        paths += found
        labels += [index] * len(found)
    groups = np.array([source_group(path) for path in paths])
    _, val_index, _, _ = split_validation(np.arange(len(paths)), np.array(labels), groups,
                                          fraction, seed)
    return [paths[i] for i in val_index]


def no_hand_frames(data: Path, count: int = 60) -> list[np.ndarray]:
    """Digits on paper and fruits in a scene, from the training splits."""
    rng = np.random.default_rng(7)
    digits = np.load(data / "digits" / "mnist_train_from_png.npz")["x_train"][:count]
    fruits = sorted((data / "fruits" / "Training").glob("*/*.jpg"))
    picks = [fruits[i] for i in rng.choice(len(fruits), count, replace=False)]
    return ([digit_on_paper(d, rng) for d in digits]
            + [photo_in_scene(cv2.imread(str(p)), rng) for p in picks])


def evaluate(variant: str, thresholds: dict, photos: list[np.ndarray],
             scenes: list[np.ndarray], empty: list[np.ndarray]) -> dict:
    palm, landmark = hand_model_path("palm", variant), hand_model_path("landmark", variant)
    still = HandTracker(palm, landmark, still=True, thresholds=thresholds)
    video = HandTracker(palm, landmark, thresholds=thresholds)
    found = by_palm = 0
    presences = []
    for photo in photos:
        hand, _ = still.process(photo)
        if hand is not None:
            found += 1
            by_palm += hand.detected
            presences.append(hand.presence)
    scene_found = scene_still = 0
    for frame in scenes:
        video.reset()
        scene_found += video.process(frame)[0] is not None
        scene_still += still.process(frame)[0] is not None
    false_still = sum(still.process(frame)[0] is not None for frame in empty)
    false_video = 0
    for frame in empty:
        video.reset()
        false_video += video.process(frame)[0] is not None
    n = len(photos)
    return {"variant": variant, "thresholds": thresholds,
            "still_found": round(found / n, 4), "still_by_palm": round(by_palm / n, 4),
            "median_presence": round(float(np.median(presences)), 3) if presences else None,
            "scene_found": round(scene_found / len(scenes), 4),
            "scene_still": round(scene_still / len(scenes), 4),
            "false_still": round(false_still / len(empty), 4),
            "false_video": round(false_video / len(empty), 4), "photos": n}


GRID = {"min_palm_score": [0.5, 0.35, 0.2], "min_presence": [0.5, 0.65, 0.8]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="full", choices=["full", "lite"])
    parser.add_argument("--grid", action="store_true", help="sweep GRID, else the defaults")
    parser.add_argument("--set", action="append", default=[],
                        help="override a threshold, e.g. --set refine=0 (JSON value)")
    args = parser.parse_args()
    paths = validation_paths(DATA)
    photos = [cv2.imread(str(path)) for path in paths]
    rng = np.random.default_rng(3)
    scenes = [photo_anywhere(photo, rng)[0] for photo in photos]
    empty = no_hand_frames(DATA)
    base = dict(DEFAULT_THRESHOLDS)
    for item in args.set:
        key, value = item.split("=", 1)
        base[key] = json.loads(value)
    settings = [base]
    if args.grid:
        keys = list(GRID)
        settings = [{**base, **dict(zip(keys, values))}
                    for values in itertools.product(*(GRID[k] for k in keys))]
    for thresholds in settings:
        print(json.dumps(evaluate(args.variant, thresholds, photos, scenes, empty)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
