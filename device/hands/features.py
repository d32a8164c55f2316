"""Hand landmarks -> the classifier's input vector. Training and the device both call this.

The 21 landmarks say what the hand does, but also where it is, how big it looks, which hand it
is and how it is turned in the picture: none of that is the sign. So, per hand:

1. centre on the wrist (landmark 0);
2. mirror left hands into right hands (x -> -x), so one classifier serves both;
3. turn in the image plane so the wrist -> middle-finger knuckle (landmark 9) points up;
4. divide by the palm's size (mean of the wrist, index-knuckle, pinky-knuckle triangle's
   sides, in 3-D), which keeps how far the fingers reach *relative to the palm*: what tells a
   fist from an open hand.

The result is 21 x 3 float32 values, flattened to 63. :data:`VERSION` names this recipe; a
bundle records it (``pipeline.features``) and the device refuses one it does not know, so a
classifier never reads features computed another way. numpy only (the device imports it).
"""

from __future__ import annotations

import numpy as np

VERSION = "landmarks-v1"
POINTS = 21
SIZE = POINTS * 3
WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 5, 9, 17
#: A palm smaller than this (in the landmarks' own units) is degenerate: no hand to normalise.
MIN_PALM = 1e-6


def is_left(handedness) -> np.ndarray:
    """``"left"`` (any case) or True -> True, per hand; arrays of either are accepted."""
    values = np.atleast_1d(np.asarray(handedness))
    if values.dtype.kind in "USO":
        return np.array([str(v).lower() == "left" for v in values], dtype=bool)  # 0 hands too
    return values.astype(bool)


def palm_size(points: np.ndarray) -> np.ndarray:
    """Mean side of the wrist / index-knuckle / pinky-knuckle triangle, per hand (N,)."""
    wrist, index, pinky = points[:, WRIST], points[:, INDEX_MCP], points[:, PINKY_MCP]
    sides = (np.linalg.norm(index - wrist, axis=1) + np.linalg.norm(pinky - wrist, axis=1)
             + np.linalg.norm(pinky - index, axis=1))
    return sides / 3.0


def upright_rotation(points: np.ndarray) -> np.ndarray:
    """Per hand, the 2-D rotation (N, 2, 2) that turns wrist -> middle knuckle to point up (-y,
    image rows grow downwards)."""
    direction = points[:, MIDDLE_MCP, :2] - points[:, WRIST, :2]
    angle = np.arctan2(direction[:, 0], -direction[:, 1])  # 0 when already pointing up
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)


def canonical_landmarks(landmarks: np.ndarray, handedness) -> np.ndarray:
    """(N, 21, 3) landmarks -> (N, 21, 3) wrist-centred, right-handed, upright, palm-scaled.

    Landmarks in any consistent units (frame pixels with z on the same scale, or the landmark
    model's normalised output): only shape survives the normalisation."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, POINTS, 3)
    points = points - points[:, WRIST:WRIST + 1]
    left = is_left(handedness)
    if left.shape[0] == 1 and points.shape[0] > 1:
        left = np.repeat(left, points.shape[0])
    points[left, :, 0] *= -1.0
    rotation = upright_rotation(points)
    points[:, :, :2] = np.einsum("nij,npj->npi", rotation, points[:, :, :2])
    scale = np.maximum(palm_size(points), MIN_PALM)
    return points / scale[:, None, None]


def features_batch(landmarks: np.ndarray, handedness) -> np.ndarray:
    """(N, 21, 3) landmarks + N handedness values -> (N, 63) float32 features."""
    return canonical_landmarks(landmarks, handedness).reshape(-1, SIZE).astype(np.float32)


def landmark_features(hand) -> np.ndarray:
    """One tracked hand (``.landmarks`` (21, 3) frame px, ``.handedness``) -> (63,) float32."""
    return features_batch(np.asarray(hand.landmarks)[None], [hand.handedness])[0]


def view_features(hand) -> tuple[np.ndarray, np.ndarray]:
    """A hand's features per view, (V, 63), and each view's weight (V,): its presence.

    A still photo's hand is seen from several views (the tracker's ``Hand.views``: each palm
    crop, each padded whole-image view the landmark model accepts, each re-cropped from its
    own landmarks); a tracked video hand has one, its own."""
    views = getattr(hand, "views", None) or [(hand.landmarks, hand.handedness, hand.presence)]
    landmarks = np.stack([np.asarray(view[0], np.float64).reshape(POINTS, 3) for view in views])
    features = features_batch(landmarks, [view[1] for view in views])
    return features, np.array([float(view[2]) for view in views], np.float32)


#: A hand bundle's ``pipeline.min_confidence``: below it the answer is ``unsure``
#: (device.pipeline.min_confidence says why it is lower than an image bundle's 0.6).
MIN_CONFIDENCE = 0.5


def fuse(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One answer from several views' class probabilities (V, C): their presence-weighted mean.

    Measured on the hand-sign photos' clip-grouped validation split (a probe, classifier
    trained on every view): the mean over every accepted view is right on 91 % of the photos,
    the single best-presence view on 90 %, the one view the tracker used to pick on 80 %
    (trained on that view alone). One view's landmarks can be off on a fist; the views rarely
    agree on the same wrong sign."""
    probs = np.asarray(probs, np.float64).reshape(len(weights), -1)
    weights = np.maximum(np.asarray(weights, np.float64), 1e-6)
    return (probs * weights[:, None]).sum(0) / weights.sum()
