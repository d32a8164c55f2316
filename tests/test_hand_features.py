"""device.hands.features: what the landmark classifier reads is the hand's shape alone, not
where the hand is, how large, which hand, or how it is turned in the picture."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from device.hands import features


def sample_hands(count: int = 6, seed: int = 0) -> np.ndarray:
    """Hand-like point sets: a palm triangle and fingers upwards from it, randomly bent."""
    rng = np.random.default_rng(seed)
    hands = rng.normal(0.0, 8.0, (count, 21, 3))
    hands[:, 0] += [0.0, 100.0, 0.0]           # wrist below
    hands[:, 5] += [-30.0, 20.0, 0.0]          # index knuckle
    hands[:, 9] += [0.0, 15.0, 0.0]            # middle knuckle
    hands[:, 17] += [40.0, 30.0, 0.0]          # pinky knuckle
    return hands + [320.0, 240.0, 0.0]


def rotate_in_plane(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    turned = points.copy()
    turned[..., :2] = points[..., :2] @ np.array([[c, -s], [s, c]]).T
    return turned


def test_shape_dtype_and_version():
    hand = SimpleNamespace(landmarks=sample_hands(1)[0], handedness="right")
    vector = features.landmark_features(hand)
    assert vector.shape == (63,) and vector.dtype == np.float32
    assert features.VERSION == "landmarks-v1"


def test_wrist_at_origin_palm_of_unit_size_middle_knuckle_up():
    canonical = features.canonical_landmarks(sample_hands(), "right")
    assert np.allclose(canonical[:, features.WRIST], 0.0)
    assert np.allclose(features.palm_size(canonical), 1.0)
    middle = canonical[:, features.MIDDLE_MCP]
    assert np.allclose(middle[:, 0], 0.0, atol=1e-9) and np.all(middle[:, 1] < 0)


@pytest.mark.parametrize("angle", [0.3, -1.2, np.pi])
def test_invariant_to_position_size_and_in_plane_turn(angle):
    hands = sample_hands()
    moved = rotate_in_plane(hands, angle) * 2.7 + [55.0, -13.0, 4.0]
    assert np.allclose(features.features_batch(moved, ["right"] * len(hands)),
                       features.features_batch(hands, ["right"] * len(hands)), atol=1e-5)


def test_a_left_hand_reads_as_the_mirrored_right_hand():
    hands = sample_hands()
    mirrored = hands.copy()
    mirrored[..., 0] *= -1.0
    assert np.allclose(features.features_batch(mirrored, ["left"] * len(hands)),
                       features.features_batch(hands, ["right"] * len(hands)), atol=1e-6)
    # ...and a left hand read as right is its mirror image, not the same vector.
    assert not np.allclose(features.features_batch(hands, "left"),
                           features.features_batch(hands, "right"))


def test_different_finger_poses_stay_apart():
    hands = sample_hands(2, seed=3)
    a, b = features.features_batch(hands, ["right", "right"])
    assert np.linalg.norm(a - b) > 0.1


def test_handedness_spellings():
    assert features.is_left(["Left", "right", "LEFT"]).tolist() == [True, False, True]
    assert features.is_left(np.array([True, False])).tolist() == [True, False]


def test_degenerate_hand_gives_finite_features():
    flat = np.zeros((1, 21, 3))
    assert np.all(np.isfinite(features.features_batch(flat, "right")))


def test_no_hands_give_an_empty_batch():
    empty = features.features_batch(np.zeros((0, 21, 3)), np.array([], dtype="<U5"))
    assert empty.shape == (0, 63) and empty.dtype == np.float32


def test_views_fuse_by_presence_and_a_hand_without_views_is_its_own_view():
    hands = sample_hands(3)
    hand = SimpleNamespace(landmarks=hands[0], handedness="right", presence=0.9,
                           views=[(hands[0], "right", 0.9), (hands[1], "left", 0.6),
                                  (hands[2], "right", 0.5)])
    x, weights = features.view_features(hand)
    assert x.shape == (3, features.SIZE) and weights.tolist() == pytest.approx([0.9, 0.6, 0.5])
    assert np.allclose(x[1], features.features_batch(hands[1][None], ["left"])[0])
    alone = SimpleNamespace(landmarks=hands[0], handedness="right", presence=0.8, views=[])
    x1, w1 = features.view_features(alone)
    assert x1.shape == (1, features.SIZE) and w1.tolist() == pytest.approx([0.8])
    # Two confident views outvote one: the weighted mean, not the single best view.
    probs = np.array([[0.2, 0.8], [0.3, 0.7], [0.95, 0.05]])
    fused = features.fuse(probs, np.array([0.9, 0.8, 0.95]))
    assert fused.argmax() == 1 and fused.sum() == pytest.approx(1.0)
    assert features.fuse(probs[2:], np.array([0.7])).tolist() == pytest.approx([0.95, 0.05])


def test_photo_landmarks_views_and_fused_probs_follow_the_device():
    from train.landmarks import empty

    hands = sample_hands(4)
    lm = empty(3)
    lm.found[:] = [True, False, True]
    lm.landmarks[0], lm.handedness[0], lm.presence[0] = hands[0], "right", 0.9
    lm.landmarks[2], lm.handedness[2], lm.presence[2] = hands[3], "left", 0.7
    lm.view_landmarks[0, :2] = hands[:2]                       # photo 0: two views
    lm.view_handedness[0, :2] = ["right", "left"]
    lm.view_presence[0, :2] = [0.9, 0.6]                        # photo 2: none stored
    x, owner, weights = lm.views()
    assert owner.tolist() == [0, 0, 2] and weights.tolist() == pytest.approx([0.9, 0.6, 0.7])
    assert np.allclose(x[2], features.features_batch(hands[3][None], ["left"])[0])
    rows = np.array([2, 0])
    x, owner, _ = lm.views(rows)
    assert owner.tolist() == [0, 1, 1]                          # positions within rows

    def predict(batch):  # "class 1" for the first photo's second view only
        return np.array([[0.1, 0.9] if np.allclose(v, lm.views()[0][1]) else [0.8, 0.2]
                         for v in batch])

    fused = lm.fused_probs(predict)
    assert fused.shape == (2, 2)
    assert fused[0] == pytest.approx((0.9 * np.array([0.8, 0.2]) + 0.6 * np.array([0.1, 0.9]))
                                     / 1.5)
    assert fused[1] == pytest.approx([0.8, 0.2])
