"""The hand landmark model on a rotated crop, and the crop for the next frame.

``hand_landmark_cpu.pbtxt``: the ROI is cut out rotated and resampled to 224x224 RGB in 0..1
(border replicated), the model gives 21 (x, y, z) landmarks in crop pixels, a hand-presence
probability, a handedness probability and 21 world landmarks (metres, origin at the hand's
centre). Presence and handedness come out of the model already squashed to 0..1 (the graph
applies no activation), so they are used as they are.

``hand_landmark_landmarks_to_roi.pbtxt``: the next frame's crop comes from the palm landmarks
(0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18), turned so that the wrist -> middle of the index,
middle and ring MCPs points up (``HandLandmarksToRectCalculator``), then shifted by 0.1 of its
height towards the fingers (shift_y -0.1), squared on the long side and scaled by 2.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from device.backends import load_model
from device.hands.geometry import (
    crop_rect,
    crop_to_frame,
    rotated_bounds,
    rotation_between,
    transform_rect,
)

LANDMARK_SIDE = 224
PALM_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
LANDMARKS_TO_CROP = {"scale": 2.0, "shift_y": -0.1}
HANDEDNESS_LABELS = ("left", "right")  # handedness.txt: index 0 "Left", index 1 "Right"


@dataclass
class LandmarkResult:
    """What one landmark-model run says about one crop."""

    landmarks: np.ndarray   # (21, 3) frame pixels; z in the same pixel scale
    world: np.ndarray       # (21, 3) metres, turned with the crop's rotation
    presence: float
    handedness: str
    handedness_score: float
    rect: tuple
    crop: np.ndarray        # uint8 RGB LANDMARK_SIDE x LANDMARK_SIDE


class LandmarkModel:
    """The landmark model, built once; ``run`` takes an RGB frame and a rotated rect."""

    def __init__(self, path, model_format: str = "tflite", threads: int = 2):
        self.model = load_model(path, model_format, threads)
        shape = self.model.inputs[0]["shape"]
        self.channels_first = shape[-1] != 3
        self.side = int(shape[2]) if self.channels_first else int(shape[1])
        self.roles = output_roles(self.model.outputs)

    def run(self, frame_rgb: np.ndarray, rect: tuple) -> LandmarkResult:
        crop = crop_rect(frame_rgb, rect, self.side)
        tensor = crop.astype(np.float32) * np.float32(1 / 255)
        tensor = tensor.transpose(2, 0, 1)[None] if self.channels_first else tensor[None]
        outputs = self.model.run([tensor])
        raw = outputs[self.roles["landmarks"]].reshape(21, 3)
        world = outputs[self.roles["world"]].reshape(21, 3)
        presence = float(outputs[self.roles["presence"]].ravel()[0])
        left_score = float(outputs[self.roles["handedness"]].ravel()[0])
        return LandmarkResult(
            landmarks=project_landmarks(raw, rect, self.side),
            world=rotate_world(world, rect[4]),
            presence=presence,
            handedness=HANDEDNESS_LABELS[0] if left_score > 0.5 else HANDEDNESS_LABELS[1],
            handedness_score=max(left_score, 1.0 - left_score),
            rect=tuple(float(v) for v in rect),
            crop=crop,
        )


def output_roles(outputs: list[dict]) -> dict:
    """Name the four outputs by shape and order: the first (1, 63) is the screen landmarks, the
    second the world ones; the first (1, 1) is presence, the second handedness (MediaPipe's
    Identity, Identity_3, Identity_1, Identity_2; outputs arrive sorted by name)."""
    wide = [i for i, spec in enumerate(outputs) if int(np.prod(spec["shape"])) == 63]
    single = [i for i, spec in enumerate(outputs) if int(np.prod(spec["shape"])) == 1]
    if len(wide) != 2 or len(single) != 2:
        from device.errors import UserError
        raise UserError("the hand landmark model does not have MediaPipe's four outputs "
                        "(2 x 63 landmarks, 2 x 1 scores): use hand_landmark_full/lite")
    return {"landmarks": wide[0], "world": wide[1], "presence": single[0],
            "handedness": single[1]}


def project_landmarks(raw: np.ndarray, rect: tuple, side: int) -> np.ndarray:
    """(21, 3) crop pixels -> frame pixels. z scales with the crop like x and y (MediaPipe's
    normalised z additionally divides by 0.4; here z stays in the x/y pixel scale)."""
    xy = crop_to_frame(raw[:, :2], rect, side)
    z = raw[:, 2:3] * (rect[2] / side)
    return np.concatenate([xy, z], axis=1).astype(np.float32)


def rotate_world(world: np.ndarray, angle: float) -> np.ndarray:
    """World landmarks turned by the crop's rotation (WorldLandmarkProjectionCalculator)."""
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = world[:, 0], world[:, 1]
    return np.stack([x * cos - y * sin, x * sin + y * cos, world[:, 2]], axis=1).astype(
        np.float32)


def landmarks_rect(landmarks: np.ndarray, scale: float = LANDMARKS_TO_CROP["scale"],
                   shift_y: float = LANDMARKS_TO_CROP["shift_y"]) -> tuple:
    """The next frame's crop from this frame's landmarks (frame pixels)."""
    palm = np.asarray(landmarks)[list(PALM_LANDMARKS), :2]
    # Within the palm subset, 4, 6, 8 are the index, middle and ring MCPs (landmarks 5, 9, 13).
    knuckles = ((palm[4] + palm[8]) / 2 + palm[6]) / 2
    angle = rotation_between(palm[0], knuckles)
    return transform_rect(rotated_bounds(palm, angle), scale=scale, shift_y=shift_y)
