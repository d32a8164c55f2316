"""Scene footage for the camera-scene measurements (issue 16), built from held-out test data.

Shared by tests/test_scenes.py and ``python -m tests.measure_scenes``: every frame shows a real
test photo or a real MNIST test digit (device/footage.py renders it), made when it is needed
and never stored. Each builder is seeded, so a set is the same every time it is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from device.footage import (
    PAPERS,
    PENS,
    SURFACES,
    digit_on_paper,
    digits_on_real_paper,
    empty_scene,
    fruit_on_surface,
    page_without_digit,
    photo_in_scene,
)

EMPTY_KINDS = ("plain", "wood", "wall", "cloth", "page", "covered")


@dataclass
class SceneSet:
    """Frames with their true label index (-1: nothing there) and per-frame tags for breakdowns."""

    name: str
    frames: list[np.ndarray] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    tags: list[dict] = field(default_factory=list)

    def add(self, frame: np.ndarray, label: int, **tags) -> None:
        self.frames.append(frame)
        self.y.append(label)
        self.tags.append(tags)


def fruit_test_photos(data_dir: Path, labels: list[str], per_class: int, seed: int = 7):
    """``per_class`` seeded test photos of each class: (BGR photos, label indices)."""
    rng = np.random.default_rng(seed)
    test_dir = data_dir / "fruits" / "Test"
    photos, y = [], []
    for index, label in enumerate(labels):
        files = sorted((test_dir / label).glob("*.jpg"))
        for path in rng.permutation(files)[:per_class]:
            photos.append(cv2.imread(str(path)))
            y.append(index)
    return photos, y


def fruit_photo_scenes(photos, y, seed: int = 5, sizes=None) -> SceneSet:
    """The first footage: the photo (white background and all) in a lit, tinted scene, either
    filling the 0.6 centre box (``sizes`` None) or ``sizes`` = (low, high) pixels."""
    rng = np.random.default_rng(seed)
    scenes = SceneSet("fruit photos in a scene" + (f" {sizes[0]}-{sizes[1]} px" if sizes else ""))
    for photo, label in zip(photos, y):
        side = int(rng.integers(sizes[0], sizes[1] + 1)) if sizes else None
        scenes.add(photo_in_scene(photo, rng, model_side=64, side=side), label)
    return scenes


def fruits_anywhere(photos, y, seed: int = 9, kinds=SURFACES) -> SceneSet:
    """A fruit cut from each photo, 1/6 to 2/3 of the frame tall, anywhere, on each surface
    kind in turn, with a cast shadow."""
    rng = np.random.default_rng(seed)
    scenes = SceneSet("fruits anywhere, any size")
    for index, (photo, label) in enumerate(zip(photos, y)):
        kind = kinds[index % len(kinds)]
        frame, box = fruit_on_surface(photo, rng, kind)
        scenes.add(frame, label, surface=kind, height=box[3])
    return scenes


def empty_scenes(count: int, seed: int = 13, kinds=EMPTY_KINDS) -> SceneSet:
    """Nothing there: surfaces of the footage with no fruit, blank pages, a covered lens."""
    rng = np.random.default_rng(seed)
    scenes = SceneSet("empty scenes")
    for index in range(count):
        kind = kinds[index % len(kinds)]
        scenes.add(empty_scene(rng, kind), -1, surface=kind)
    return scenes


def seeded_digits(x_test: np.ndarray, y_test: np.ndarray, count: int, seed: int = 7):
    pick = np.sort(np.random.default_rng(seed).permutation(len(y_test))[:count])
    return x_test[pick, :, :, 0] if x_test.ndim == 4 else x_test[pick], y_test[pick]


def digits_plain_footage(digits, y, seed: int = 11) -> SceneSet:
    """The first digits footage: dark ink on light paper, lighting gradient, noise, JPEG."""
    rng = np.random.default_rng(seed)
    scenes = SceneSet("digits on paper (first footage)")
    for digit, label in zip(digits, y):
        scenes.add(digit_on_paper(digit, rng), int(label))
    return scenes


def digits_hard_paper(digits, y, seed: int = 17, neighbours=None) -> SceneSet:
    """Digits on real paper: each frame cycles through pens and papers, draws a stroke width of
    1-6 px, a tilt up to 25 degrees, a shadow edge on half of them, the digit touching the box
    edge on one in six and one or two neighbouring digits on one in five (``neighbours``:
    digits to borrow them from)."""
    rng = np.random.default_rng(seed)
    scenes = SceneSet("digits on harder paper")
    pens, papers = list(PENS), list(PAPERS)
    for index, (digit, label) in enumerate(zip(digits, y)):
        pen, paper = pens[index % 3], papers[(index // 3) % 3]
        stroke = float(rng.uniform(1, 6))
        shadow = bool(index % 2)
        touch = index % 6 == 5
        others = int(rng.integers(1, 3)) if neighbours is not None and index % 5 == 4 else 0
        extra = [neighbours[int(i)] for i in rng.integers(0, len(neighbours), others)] \
            if others else []
        frame = digits_on_real_paper([digit, *extra], rng, pen=pen, paper=paper, stroke=stroke,
                                     shadow=shadow, touch_edge=touch and not others)
        scenes.add(frame, int(label), pen=pen, paper=paper, stroke=round(stroke), shadow=shadow,
                   touch=touch and not others, others=others)
    return scenes


def empty_pages(count: int, seed: int = 19) -> SceneSet:
    """Nothing written: plain, ruled and squared sheets, with and without a shadow edge, and
    the empty surfaces (a table, a wall) a digits camera may also point at."""
    rng = np.random.default_rng(seed)
    scenes = SceneSet("empty pages and tables")
    kinds = [*PAPERS, "wood", "wall", "plain", "covered"]
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind in PAPERS:
            frame = page_without_digit(rng, paper=kind, shadow=bool(index % 2))
        else:
            frame = empty_scene(rng, kind)
        scenes.add(frame, -1, surface=kind)
    return scenes
