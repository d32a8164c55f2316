"""Drawing one result record on its frame: box, label, score, camera fps, the model's input.

One pure function, as in TensorFlow's Raspberry Pi example: :func:`visualize` draws on a copy and
returns it. It reads only the result record (docs/contracts.md), so the window, ``--save`` and
``serve`` all show the same thing.

Text is drawn once, as a mask, and its outline is that mask dilated. The usual recipe (a thick
black ``putText`` under a thin coloured one) relies on glyph advances not depending on the stroke
thickness. That holds in OpenCV 4.x, but not in opencv-python-headless 5.0.0.93, the version our
requirements install: there a thickness-4 line of "unsure 60%" at scale 1.2 is 195 px wide and a
thickness-1 line 185 px, so the outline drifts right by about one pixel per character and
reappears beside the fill as a ghost copy of the text. A dilated mask lines up by construction,
whatever the font engine (tests/test_overlay.py measures both).
"""

from __future__ import annotations

import cv2
import numpy as np

from device.result import NOTHING, UNSURE

GREEN, AMBER, GREY = (80, 200, 80), (0, 190, 255), (170, 170, 170)
WHITE, BLACK, CYAN = (255, 255, 255), (0, 0, 0), (255, 220, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX

#: MediaPipe's HAND_CONNECTIONS (mediapipe/python/solutions/hands_connections.py): palm, then
#: thumb, index, middle, ring and pinky, over the 21 landmarks.
HAND_CONNECTIONS = (
    (0, 1), (0, 5), (9, 13), (13, 17), (5, 9), (0, 17),
    (1, 2), (2, 3), (3, 4),
    (5, 6), (6, 7), (7, 8),
    (9, 10), (10, 11), (11, 12),
    (13, 14), (14, 15), (15, 16),
    (17, 18), (18, 19), (19, 20),
)


def text_mask(line: str, scale: float, thickness: int, outline: int):
    """``line`` rendered once into a float mask (0..1), its dilated outline, and where the
    baseline origin sits inside them. The padding leaves room for the outline and for glyphs
    that overhang the width ``getTextSize`` reports."""
    (width, height), baseline = cv2.getTextSize(line, FONT, scale, thickness)
    pad = outline + thickness + 4
    mask = np.zeros((height + baseline + 2 * pad, width + 2 * pad + height // 2), np.uint8)
    origin = (pad, pad + height)
    cv2.putText(mask, line, origin, FONT, scale, 255, thickness, cv2.LINE_AA)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outline + 1, 2 * outline + 1))
    ring = cv2.dilate(mask, kernel)
    return mask.astype(np.float32) / 255, ring.astype(np.float32) / 255, origin


def blend(canvas: np.ndarray, alpha: np.ndarray, colour, top: int, left: int) -> None:
    """Paint ``colour`` into ``canvas`` through ``alpha`` placed at (top, left), clipped."""
    height, width = alpha.shape
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(canvas.shape[0], top + height), min(canvas.shape[1], left + width)
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left, None]
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = (region * (1 - a) + np.float32(colour) * a + 0.5).astype(np.uint8)


def stroke(scale: float) -> int:
    """The fill's stroke thickness at ``scale``."""
    return max(1, round(scale * 1.5))


def outline_width(scale: float) -> int:
    return max(2, round(scale * 2.5))


def text(canvas: np.ndarray, line: str, origin: tuple[int, int], scale: float, colour,
         outline_colour=BLACK) -> None:
    """Text with a dark outline, readable on any background (see the module docstring)."""
    mask, ring, (ox, oy) = text_mask(line, scale, stroke(scale), outline_width(scale))
    top, left = origin[1] - oy, origin[0] - ox
    blend(canvas, ring, outline_colour, top, left)
    blend(canvas, mask, colour, top, left)


def label_line(record: dict) -> tuple[str, tuple[int, int, int]]:
    """What the user reads and its colour: ``paper 92%``, ``unsure (paper?) 45%``, ``nothing``."""
    label, score = record.get("label"), float(record.get("score") or 0.0)
    if label == NOTHING:
        return NOTHING, GREY
    if label == UNSURE:
        guess = record.get("guess")
        return (f"unsure ({guess}?) {score:.0%}" if guess else "unsure"), AMBER
    return f"{label} {score:.0%}", GREEN


def caption(record: dict) -> str:
    """The label line alone."""
    return label_line(record)[0]


def draw_hand(canvas: np.ndarray, landmarks, colour, scale: float) -> tuple[int, int, int, int]:
    """The 21-point skeleton; returns the landmarks' bounding box (x, y, w, h)."""
    points = np.asarray(landmarks, np.float32)[:, :2]
    pixels = [(int(round(x)), int(round(y))) for x, y in points]
    width = max(1, round(2 * scale))
    for a, b in HAND_CONNECTIONS:
        if a < len(pixels) and b < len(pixels):
            cv2.line(canvas, pixels[a], pixels[b], WHITE, width, cv2.LINE_AA)
    for point in pixels:
        cv2.circle(canvas, point, max(2, round(3 * scale)), colour, -1, cv2.LINE_AA)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def as_bgr(picture: np.ndarray) -> np.ndarray:
    """The model's input as a BGR uint8 picture. It comes as the model sees it: grey (H, W) or
    (H, W, 1), or RGB (colour models and the hand crop are RGB, device/preprocess.py), uint8 or
    float in 0..1."""
    picture = np.asarray(picture)
    if picture.ndim == 4:
        picture = picture[0]
    if picture.dtype != np.uint8:
        peak = float(picture.max()) if picture.size else 1.0
        picture = np.clip(picture * (255.0 if peak <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if picture.ndim == 3 and picture.shape[2] == 1:
        picture = picture[:, :, 0]
    if picture.ndim == 2:
        return cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)


def draw_inset(canvas: np.ndarray, inset: np.ndarray, scale: float) -> None:
    """The model's input, enlarged with visible pixels, in the top-right corner."""
    side = max(48, canvas.shape[0] // 5)
    picture = as_bgr(inset)
    height, width = picture.shape[:2]
    fit = side / max(height, width)
    size = (max(1, int(width * fit)), max(1, int(height * fit)))
    small = cv2.resize(picture, size, interpolation=cv2.INTER_NEAREST if fit >= 1
                       else cv2.INTER_AREA)
    margin = 8
    top, left = margin, canvas.shape[1] - size[0] - margin
    if left < 0 or top + size[1] > canvas.shape[0]:
        return
    canvas[top:top + size[1], left:left + size[0]] = small
    cv2.rectangle(canvas, (left - 1, top - 1), (left + size[0], top + size[1]), WHITE, 1)
    text(canvas, "model input", (left, top + size[1] + int(16 * scale)), 0.45 * scale, WHITE)


def visualize(frame: np.ndarray, record: dict, fps: float,
              inset: np.ndarray | None = None) -> np.ndarray:
    """The annotated frame: the box the model looked at (green: a class, amber: unsure, grey:
    nothing), the label with its score, the camera's frame rate and the model's time, the
    model's input as an inset, and a hand's skeleton when the record has landmarks."""
    canvas = frame.copy()
    label, colour = label_line(record)
    scale = max(0.5, frame.shape[0] / 640)
    box = record.get("box")
    hand = record.get("hand") or {}
    if hand.get("landmarks"):
        hand_box = draw_hand(canvas, hand["landmarks"], colour, scale)
        box = box or hand_box
    if box:
        x, y, w, h = (int(v) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, max(2, round(2 * scale)))
        anchor = (x + 4, y - 10) if y >= 40 * scale else (x + 4, y + h - 10)
    else:
        anchor = (10, int(84 * scale))
    text(canvas, label, anchor, 1.1 * scale, colour)
    model_ms = float(record.get("latency_ms") or 0) + float(record.get("preprocess_ms") or 0)
    text(canvas, f"camera {fps:.1f} fps", (10, int(26 * scale)), 0.7 * scale, WHITE)
    text(canvas, f"model {model_ms:.1f} ms", (10, int(52 * scale)), 0.7 * scale, WHITE)
    if inset is not None and np.asarray(inset).size:
        draw_inset(canvas, inset, scale)
    return canvas
