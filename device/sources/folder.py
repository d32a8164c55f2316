"""A folder of images, in sorted file-name order; each frame carries its file name."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ImageFolderSource:
    live = False

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise UserError(f"image folder {self.folder} has no images (.jpg/.png/...): point "
                            "--source at a folder that has some")
        self._next = 0

    def read(self) -> tuple[np.ndarray, str] | None:
        if self._next >= len(self.files):
            return None
        path = self.files[self._next]
        self._next += 1
        frame = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise UserError(f"cannot decode image {path}: remove or replace the file")
        return frame, path.name

    def close(self) -> None:
        pass
