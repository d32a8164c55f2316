"""Pixel geometry shared by the hand stages: letterboxing, rotated rectangles, crops.

Coordinates are continuous pixels (0 is the left edge of the first pixel, ``width`` the right
edge of the last), so a point maps through a crop and back without half-pixel drift. A rotated
rectangle is ``(cx, cy, w, h, angle)`` in frame pixels; ``angle`` is MediaPipe's rotation in
radians: positive turns the rectangle's "up" towards the frame's right (clockwise on screen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def normalize_radians(angle: float) -> float:
    """Wrap an angle into [-pi, pi), as MediaPipe's NormalizeRadians does."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a square tensor: per-axis scale, then a centred offset."""

    scale_x: float
    scale_y: float
    left: float
    top: float

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) tensor pixels -> image pixels (undoes the letterbox)."""
        points = np.asarray(points, np.float32)
        return np.stack([(points[..., 0] - self.left) / self.scale_x,
                         (points[..., 1] - self.top) / self.scale_y], axis=-1)

    def to_tensor(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) image pixels -> tensor pixels."""
        points = np.asarray(points, np.float32)
        return np.stack([points[..., 0] * self.scale_x + self.left,
                         points[..., 1] * self.scale_y + self.top], axis=-1)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` (H, W, 3 uint8) into a black ``size`` x ``size`` square, aspect kept and
    centred (MediaPipe's ``keep_aspect_ratio`` with ``BORDER_ZERO``). Shrinking uses INTER_AREA
    so a 640x480 frame does not alias on its way down to 192 pixels."""
    height, width = image.shape[:2]
    fit = size / max(height, width)
    new_w, new_h = max(1, round(width * fit)), max(1, round(height * fit))
    interpolation = cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    square = np.zeros((size, size, image.shape[2]), image.dtype)
    square[top:top + new_h, left:left + new_w] = resized
    return square, Letterbox(new_w / width, new_h / height, float(left), float(top))


def rect_matrix(rect: tuple, side: int) -> np.ndarray:
    """2x3 affine: crop pixels (u, v) in a ``side`` x ``side`` crop -> frame pixels."""
    cx, cy, w, h, angle = rect
    cos, sin = math.cos(angle), math.sin(angle)
    a = np.array([[cos * w / side, -sin * h / side], [sin * w / side, cos * h / side]])
    offset = np.array([cx, cy]) - a @ np.array([side / 2, side / 2])
    return np.hstack([a, offset[:, None]]).astype(np.float64)


def crop_rect(image: np.ndarray, rect: tuple, side: int,
              border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The rotated ``rect`` of ``image`` resampled to ``side`` x ``side`` (upright: the rect's
    "up" becomes the crop's top). A rect much larger than the crop is first shrunk with
    INTER_AREA so the bilinear warp does not alias."""
    shrink = min(rect[2], rect[3]) / side
    if shrink > 2.0:
        factor = 1.0 / shrink * 1.5
        small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        sy, sx = small.shape[0] / image.shape[0], small.shape[1] / image.shape[1]
        cx, cy, w, h, angle = rect
        return crop_rect(small, (cx * sx, cy * sy, w * sx, h * sy, angle), side, border)
    matrix = rect_matrix(rect, side)
    # warpAffine samples pixel indices; shift by half a pixel on both sides of the map.
    index_matrix = matrix.copy()
    index_matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(image, index_matrix, (side, side),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)


def crop_to_frame(points: np.ndarray, rect: tuple, side: int) -> np.ndarray:
    """(N, 2) crop pixels -> frame pixels."""
    matrix = rect_matrix(rect, side)
    points = np.asarray(points, np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def frame_to_crop(points: np.ndarray, rect: tuple, side: int) -> np.ndarray:
    """(N, 2) frame pixels -> crop pixels."""
    matrix = rect_matrix(rect, side)
    inverse = cv2.invertAffineTransform(matrix)
    points = np.asarray(points, np.float64)
    return (points @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)


def transform_rect(rect: tuple, scale: float, shift_y: float, shift_x: float = 0.0,
                   square_long: bool = True) -> tuple:
    """MediaPipe's RectTransformationCalculator in pixels: shift along the rect's own axes (in
    units of its size), make it square on the long side, then scale."""
    cx, cy, w, h, angle = rect
    cos, sin = math.cos(angle), math.sin(angle)
    cx += w * shift_x * cos - h * shift_y * sin
    cy += w * shift_x * sin + h * shift_y * cos
    if square_long:
        w = h = max(w, h)
    return (cx, cy, w * scale, h * scale, angle)


def rotation_between(start: np.ndarray, end: np.ndarray, target: float = math.pi / 2) -> float:
    """Rotation that turns the start->end direction to ``target`` (90 degrees: straight up)."""
    return normalize_radians(target - math.atan2(-(end[1] - start[1]), end[0] - start[0]))


def rotated_bounds(points: np.ndarray, angle: float) -> tuple:
    """The tightest rect at ``angle`` around (N, 2) points: MediaPipe's way (turn the points
    by -angle around their axis-aligned centre, take min/max, turn the centre back)."""
    points = np.asarray(points, np.float64)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    cos, sin = math.cos(-angle), math.sin(-angle)
    rel = points - centre
    turned = np.stack([rel[:, 0] * cos - rel[:, 1] * sin, rel[:, 0] * sin + rel[:, 1] * cos], 1)
    low, high = turned.min(axis=0), turned.max(axis=0)
    mid = (low + high) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    cx = mid[0] * cos - mid[1] * sin + centre[0]
    cy = mid[0] * sin + mid[1] * cos + centre[1]
    return (float(cx), float(cy), float(high[0] - low[0]), float(high[1] - low[1]), angle)


def axis_box(points: np.ndarray) -> tuple:
    """(x, y, w, h) around (N, 2+) points."""
    low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))
