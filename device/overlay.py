"""Drawing the result on a frame: ROI box, label, confidence, FPS and inference time.

One pure function, as in TensorFlow's Raspberry Pi example: it draws on a copy and returns it.
"""

from __future__ import annotations

import cv2
import numpy as np

from device.camera import Roi
from device.smoothing import UNSURE

GREEN, AMBER, WHITE, BLACK = (80, 200, 80), (0, 190, 255), (255, 255, 255), (0, 0, 0)


def text(frame: np.ndarray, line: str, origin: tuple[int, int], scale: float, colour) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(frame, line, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK, 4, cv2.LINE_AA)
    cv2.putText(frame, line, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def visualize(frame: np.ndarray, roi: Roi, label: str, score: float, fps: float,
              inference_ms: float) -> np.ndarray:
    """The annotated frame: ROI box (green when sure, amber when unsure) and the numbers."""
    canvas = frame.copy()
    colour = AMBER if label == UNSURE else GREEN
    cv2.rectangle(canvas, (roi.x, roi.y), (roi.x + roi.width, roi.y + roi.height), colour, 2)
    scale = max(0.5, frame.shape[0] / 640)
    text(canvas, f"{label} {score:.0%}", (roi.x, max(20, roi.y - 10)), scale * 1.2, colour)
    text(canvas, f"FPS {fps:.1f}  inference {inference_ms:.1f} ms", (10, int(24 * scale)),
         scale * 0.7, WHITE)
    return canvas
