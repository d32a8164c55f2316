"""A folder of images (or one image file), in sorted file-name order; each frame carries its name.

An image that cannot be decoded (empty, truncated, not an image) does not stop a folder run:
it is skipped with a warning line, counted, and :meth:`ImageFolderSource.problem` reports the
count at the end so the run exits non-zero. Transparent images are composited onto white.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from device.errors import UserError
from device.preprocess import to_bgr8

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def decode_image(path: Path) -> np.ndarray | None:
    """8-bit BGR pixels of ``path`` (alpha onto white), or None if it is not a decodable image."""
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError:
        return None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:  # e.g. a header claiming more pixels than OpenCV decodes (a "bomb")
        return None
    if image is None or image.size == 0:
        return None
    return to_bgr8(image)


class ImageFolderSource:
    live = False

    def __init__(self, folder: Path, files: list[Path] | None = None):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.files = files if files is not None else sorted(
            p for p in self.folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise UserError(f"image folder {self.folder} has no images (.jpg/.png/...): point "
                            "--source at a folder that has some")
        self.skipped: list[str] = []
        self._next = 0

    def read(self) -> tuple[np.ndarray, str] | None:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            frame = decode_image(path)
            if frame is not None:
                return frame, path.name
            self.skipped.append(path.name)
            print(f"warning: skipping {path}: it cannot be decoded as an image (empty or "
                  "corrupt)", file=sys.stderr, flush=True)
        return None

    def problem(self) -> str | None:
        """What went wrong over the whole run, for a non-zero exit at its end (None: nothing)."""
        if not self.skipped:
            return None
        shown = ", ".join(self.skipped[:5]) + (", ..." if len(self.skipped) > 5 else "")
        return (f"{len(self.skipped)} of {len(self.files)} images in {self.folder} could not be "
                f"decoded and were skipped ({shown}): remove or replace them")

    def close(self) -> None:
        pass


def image_file_source(path: Path) -> ImageFolderSource:
    """One image file given as ``--source``: a folder run of that one image (same defaults: the
    whole image, no smoothing), whose failure to decode is an error at start-up instead."""
    path = Path(path)
    if decode_image(path) is None:
        raise UserError(f"--source {path}: cannot decode it as an image (the file is empty or "
                        "corrupt)")
    source = ImageFolderSource(path.parent, [path])
    source.name = path.name
    return source
