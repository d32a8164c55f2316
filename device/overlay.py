"""Drawing the result on a frame: ROI box, label, confidence, FPS and inference time.

One pure function, as in TensorFlow's Raspberry Pi example: it draws on a copy and returns it.
"""

from __future__ import annotations

import cv2
import numpy as np

from device.result import NOTHING, UNSURE

GREEN, AMBER, WHITE, BLACK = (80, 200, 80), (0, 190, 255), (255, 255, 255), (0, 0, 0)


def text(frame: np.ndarray, line: str, origin: tuple[int, int], scale: float, colour) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(frame, line, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK, 4, cv2.LINE_AA)
    cv2.putText(frame, line, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def caption(record: dict) -> str:
    """The label line: a class with its score, ``unsure (paper?)`` naming the guess, ``nothing``."""
    label = record["label"]
    if label == UNSURE and record.get("guess"):
        return f"unsure ({record['guess']}?) {record['score']:.0%}"
    if label == NOTHING:
        return NOTHING
    return f"{label} {record['score']:.0%}"


def visualize(frame: np.ndarray, record: dict, fps: float,
              inset: np.ndarray | None = None) -> np.ndarray:
    """The annotated frame, drawn from the result record: the box the model looked at (green
    when sure, amber otherwise), the label, the camera's fps and the inference time."""
    canvas = frame.copy()
    colour = GREEN if record["label"] not in (UNSURE, NOTHING) else AMBER
    scale = max(0.5, frame.shape[0] / 640)
    x, y = 10, int(60 * scale)
    if record.get("box"):
        x, y, w, h = record["box"]
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
    text(canvas, caption(record), (x, max(20, y - 10)), scale * 1.2, colour)
    text(canvas, f"FPS {fps:.1f}  inference {record['latency_ms']:.1f} ms", (10, int(24 * scale)),
         scale * 0.7, WHITE)
    return canvas
