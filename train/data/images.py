"""Reading class-per-folder image trees (Fruits-360, rock/paper/scissors) into arrays."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from device.errors import UserError
from device.preprocess import fit_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

#: Roboflow export names: ``<class>.<source>_<ext>.rf.<hash>[_<crop>].jpg``.
ROBOFLOW_NAME = re.compile(r"^[^.]+\.(?P<source>.+?)\.rf\.[0-9a-f]+")
#: A frame number after a video or photo-session name: ``IMG_5567_mp4-14``, ``...-10-20-AM-4``.
FRAME_SUFFIX = re.compile(r"(?<=mp4|mov|MOV|MP4|avi|-AM|-PM)-\d+$")


def find_subdir(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that exists under ``root`` (datasets disagree on capitals)."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def list_classes(split_dir: Path) -> list[str]:
    """Class folder names under a split, sorted for a stable label order."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_images(class_dir: Path) -> list[Path]:
    """Image files in one class folder; an empty folder is a user error, not a silent zero."""
    if not class_dir.is_dir():
        raise UserError(f"class folder {class_dir} is missing: add it or drop the class from --classes")
    files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"class folder {class_dir} has no images (.jpg/.png): "
                        "fill it or drop the class from --classes")
    return files


def read_image(path: Path) -> np.ndarray:
    """Decode one image with OpenCV (BGR), naming the file if it is unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError(f"cannot decode image {path}: it is empty or corrupt, remove or replace it")
    return image


def source_group(path: Path) -> str:
    """The recording an image came from, so a validation split can keep whole clips apart.

    Roboflow exports name each crop after its source frame (and export up to three augmented
    copies of it, under different hashes); frames of one video or photo session share a stem.
    Mixing them across train and validation makes validation a near-copy of training: the hand
    signs' stratified split scored 94.7 % while the clip-disjoint test split scored 81.5 %.
    Files named otherwise are their own group.
    """
    match = ROBOFLOW_NAME.match(path.name)
    if match is None:
        return path.stem
    source = re.sub(r"_(jpe?g|png)$", "", match["source"])
    return FRAME_SUFFIX.sub("", source)


def read_split(split_dir: Path, class_names: list[str], folder_names: list[str], spec: dict,
               desc: str, groups: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read every image of the given class folders, fitted to ``spec``; labels are list indices.
    With ``groups`` (a list), each image's :func:`source_group` is appended to it."""
    jobs: list[tuple[Path, int]] = []
    for index, folder in enumerate(folder_names):
        jobs.extend((path, index) for path in list_images(split_dir / folder))

    def fitted(job: tuple[Path, int]) -> np.ndarray:
        return fit_image(read_image(job[0]), spec)

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(tqdm(pool.map(fitted, jobs), total=len(jobs), desc=desc, unit="img",
                           leave=False, mininterval=1.0))
    x = np.stack(images) if images else np.zeros((0, *spec["size"], spec["channels"]), np.uint8)
    y = np.array([label for _, label in jobs], dtype=np.int64)
    if groups is not None:
        groups.extend(source_group(path) for path, _ in jobs)
    return x, y
