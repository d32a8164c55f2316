"""The Raspberry Pi CSI camera through picamera2 (libcamera), which OpenCV cannot drive.

A two-stream configuration: ``main`` for what a person sees and the cheap low-resolution
``lores`` stream (YUV420) for classification, as the picamera2 TensorFlow example does. The Y
plane alone is a free grayscale image; colour tasks convert lores YUV to BGR (cheap at this size).
"""

from __future__ import annotations

import cv2
import numpy as np

from device.errors import UserError
from device.sources.latest import LatestFrame


class PicameraSource:
    live = True
    name = "picamera"

    def __init__(self, width: int | None = None, height: int | None = None):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError("picamera2 is not installed: on Raspberry Pi OS run `sudo apt install "
                            "python3-picamera2` and create the venv with "
                            "--system-site-packages") from None
        try:
            self._camera = Picamera2()
            main = {"size": (width or 1280, height or 960), "format": "RGB888"}
            lores = {"size": (640, 480), "format": "YUV420"}
            self._camera.configure(self._camera.create_preview_configuration(main=main,
                                                                            lores=lores))
            self._camera.start()
        except Exception as exc:  # noqa: BLE001 - libcamera errors come in many types
            raise UserError(f"cannot start the Pi camera ({exc}): check the ribbon cable and "
                            "`rpicam-hello --list-cameras`") from None
        self._latest = LatestFrame(self._grab)

    def _grab(self) -> np.ndarray:
        yuv = self._camera.capture_array("lores")
        return cv2.cvtColor(yuv, cv2.COLOR_YUV420p2BGR)

    def read(self) -> tuple[np.ndarray, str]:
        return self._latest.get(), self.name

    def close(self) -> None:
        self._latest.stop()
        self._camera.stop()
        self._camera.close()
