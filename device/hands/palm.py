"""Palm detection: MediaPipe's palm detector model decoded in numpy.

The steps follow ``palm_detection_cpu.pbtxt``: letterbox the RGB image into the 192x192 input
(values 0..1, black bars), decode the 2016 SSD anchors' box + 7 keypoints
(``TensorsToDetectionsCalculator``: x/y/w/h scaled by 192 and offset by the anchor centre, score
clipped to +-100 then sigmoid), keep scores >= ``min_palm_score``, merge overlaps with the
WEIGHTED non-max suppression (IoU > ``nms_iou``), then undo the letterbox. A palm is turned into
the landmark model's crop as ``palm_detection_detection_to_roi.pbtxt`` does: the box centre,
rotated so that wrist (keypoint 0) -> middle-finger MCP (keypoint 2) points up, shifted half a
box towards the fingers, squared on the long side and scaled by 2.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.backends import load_model
from device.hands.anchors import PALM_ANCHOR_OPTIONS, ssd_anchors
from device.hands.geometry import letterbox, rotation_between, transform_rect

PALM_KEYPOINTS = ("wrist", "index_mcp", "middle_mcp", "ring_mcp", "pinky_mcp", "thumb_cmc",
                  "thumb_mcp")
PALM_TO_CROP = {"scale": 2.6, "shift_y": -0.5}


@dataclass
class Palm:
    """One detected palm in frame pixels."""

    score: float
    box: tuple            # (x0, y0, x1, y1)
    keypoints: np.ndarray  # (7, 2)

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def centre(self) -> tuple:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def crop_rect(self, scale: float = PALM_TO_CROP["scale"],
                  shift_y: float = PALM_TO_CROP["shift_y"]) -> tuple:
        """The rotated square the landmark model should see for this palm."""
        angle = rotation_between(self.keypoints[0], self.keypoints[2])
        cx, cy = self.centre
        rect = (cx, cy, self.box[2] - self.box[0], self.box[3] - self.box[1], angle)
        return transform_rect(rect, scale=scale, shift_y=shift_y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, size: int):
    """Model outputs -> (scores (N,), boxes (N, 4) as x0,y0,x1,y1, keypoints (N, 7, 2)), all in
    tensor pixels. Anchors are 1x1 (fixed size), so offsets only need the input scale."""
    raw_boxes = raw_boxes.reshape(len(anchors), -1)
    centre = raw_boxes[:, 0:2] + anchors * size
    half = raw_boxes[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw_boxes[:, 4:18].reshape(-1, 7, 2) + anchors[:, None, :] * size
    scores = sigmoid(np.clip(raw_scores.reshape(-1), -100.0, 100.0))
    return scores, boxes, keypoints


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one x0,y0,x1,y1 box with many."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float) -> list[tuple]:
    """MediaPipe's WEIGHTED non-max suppression: take the best remaining detection, gather every
    remaining one overlapping it by more than ``iou_threshold`` (itself included), and replace
    it by their score-weighted mean box and keypoints, keeping the best score. The averaging is
    why the palm is steadier than with plain NMS: the anchors around a palm all vote."""
    order = np.argsort(-scores)
    kept = []
    while order.size:
        best = order[0]
        overlap = iou(boxes[best], boxes[order])
        members = order[overlap > iou_threshold]
        if members.size == 0:
            members = order[:1]
        weights = scores[members][:, None]
        box = (boxes[members] * weights).sum(0) / weights.sum()
        points = (keypoints[members] * weights[:, :, None]).sum(0) / weights.sum()
        kept.append((float(scores[best]), box, points))
        order = order[overlap <= iou_threshold]
        if best in order:
            order = order[order != best]
    return kept


class PalmDetector:
    """The palm model with its anchors, built once. ``detect`` takes an RGB uint8 image."""

    def __init__(self, path, model_format: str = "tflite", threads: int = 2):
        self.model = load_model(path, model_format, threads)
        shape = self.model.inputs[0]["shape"]
        self.size = int(shape[1]) if shape[-1] == 3 else int(shape[2])
        self.channels_first = shape[-1] != 3
        self.anchors = ssd_anchors({**PALM_ANCHOR_OPTIONS, "input_size": self.size})
        self._boxes_index, self._scores_index = self._output_roles()

    def _output_roles(self) -> tuple[int, int]:
        """Which output holds the (1, 2016, 18) regressors and which the (1, 2016, 1) scores."""
        widths = [spec["shape"][-1] for spec in self.model.outputs]
        return widths.index(max(widths)), widths.index(min(widths))

    def detect(self, image_rgb: np.ndarray, min_score: float = 0.5,
               nms_iou: float = 0.3) -> list[Palm]:
        """Palms in ``image_rgb``, best score first, in the image's pixels."""
        square, box = letterbox(image_rgb, self.size)
        tensor = square.astype(np.float32) * np.float32(1 / 255)
        tensor = tensor.transpose(2, 0, 1)[None] if self.channels_first else tensor[None]
        outputs = self.model.run([tensor])
        scores, boxes, keypoints = decode(outputs[self._boxes_index],
                                          outputs[self._scores_index], self.anchors, self.size)
        keep = scores >= min_score
        palms = []
        for score, merged, points in weighted_nms(scores[keep], boxes[keep], keypoints[keep],
                                                  nms_iou):
            corners = box.to_image(merged.reshape(2, 2)).reshape(4)
            palms.append(Palm(score, tuple(float(v) for v in corners), box.to_image(points)))
        return palms


def draw_palm(frame: np.ndarray, palm: Palm) -> np.ndarray:
    """A debugging picture: the palm box and its 7 keypoints."""
    out = frame.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in palm.box)
    cv2.rectangle(out, (x0, y0), (x1, y1), (0, 255, 0), 2)
    for x, y in palm.keypoints:
        cv2.circle(out, (int(round(x)), int(round(y))), 3, (0, 0, 255), -1)
    return out
