"""``HandTracker``: palm detection, hand landmarks and tracking between frames.

Video (``still=False``), as MediaPipe's hand tracking graph: while a hand is tracked, the next
frame's crop comes from this frame's landmarks and the palm detector does not run; it runs again
(on the same frame, so no frame is lost) only when the landmark model's presence drops below
``min_presence``, or before the first hand. While no hand is found, each frame also runs the
palm detector on one tile of the frame in turn (``palm_tiles``: a far hand is too small for the
whole frame at 192 px) and the landmark model on one scan window in turn.

Still images (``still=True``): nothing carries over between calls. The palm detector runs first;
when it finds nothing (tight hand crops: it misses about a third of the hand-sign photos), the
landmark model is run on the whole image padded to a square (scaled out by each factor in
``fallback_pads``, turned by each of ``fallback_angles``); when that finds nothing either, the
palm detector runs on tiles of the image (``palm_tiles``), then the landmark model on a grid of
windows (``scan_sides``), and its presence score decides. A hand found small in the image (a
scene, not a tight photo) also gets the padded views around its own box (``hand_view_below``).
A found hand is then re-cropped once from its own landmarks (``refine``), which is what the
tracker would see on the next frame. With
``still_views`` the padded whole-image views run even when a palm was found, and every view the
landmark model accepts (and its re-crop) is kept in ``Hand.views``: the classifier reads each
and the pipeline averages them by presence (device.hands.features.fuse).

Which hand, when several palms are found: the largest palm box (the hand nearest the camera,
which is the one a user holds up). The others are counted in ``info["others"]``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.hands.geometry import axis_box
from device.hands.landmarks import LandmarkModel, LandmarkResult, landmarks_rect
from device.hands.palm import Palm, PalmDetector, weighted_nms

#: Tunable thresholds (written into a bundle's ``metadata["pipeline"]["thresholds"]``).
DEFAULT_THRESHOLDS = {
    # Palm detector: sigmoid score a palm needs (MediaPipe uses 0.5; 0.3 tuned on validation:
    # the landmark presence check rejects the extra false palms).
    "min_palm_score": 0.3,
    # Weighted NMS: detections overlapping the best one by more than this IoU are merged into it.
    "nms_iou": 0.3,
    # Landmark model: hand presence needed to report a hand and to keep tracking it
    # (MediaPipe's min_tracking_confidence).
    "min_presence": 0.5,
    # Palms tried in turn (by the choice rule) until one passes min_presence.
    "max_palm_tries": 2,
    # Still images: when no palm passes, the whole image padded to a square is given to the
    # landmark model at each of these zoom-outs (1.0 = the square just holds the image).
    "fallback_pads": [1.0, 1.5],
    # ... and at each of these rotations (degrees): the landmark model wants the wrist at the
    # bottom, and sideways hands are common in photos. With still_views every one of these
    # views is classified (a probe on validation: 88 % with 0/±90°, 91 % with these plus
    # zoom-outs 1.25 and 2).
    "fallback_angles": [0, 90, -90, 45, -45, 180],
    # Still images: re-crop a found hand from its own landmarks this many times.
    "refine": 1,
    # Still images: classify every accepted view of the hand (palm crops, padded whole-image
    # views, each re-cropped once) and average them (validation: 88.7 % of photos right, from
    # 81.1 % with the one chosen view; test 92.96 %, from 87.41 %). False: the chosen view
    # only (fewer landmark runs when a palm is found).
    "still_views": True,
    # When no palm passes, also try square windows of these sides (fractions of the region's
    # shorter side) on a grid over the region: all of them for a still image, one per frame in
    # turn for video. A hand found there needs min_scan_presence (windows see more background
    # than a palm crop, so false hands are likelier). Empty list: no scan.
    # Sides 0.45 and 0.3 (and min_scan_presence 0.6, from 0.7) find the hand in scenes where
    # it is a quarter to half the frame tall: validation photos placed anywhere in 640x480
    # scenes (device.footage.hand_photo_in_scene), still mode, 60.0 % -> 68.3 % right; frames
    # without a hand still answer "no hand" (tests/test_hands.py).
    "scan_sides": [1.0, 0.6, 0.45, 0.3],
    # With the scan turned and refined (below) 0.72: validation scenes 60.0 % -> 72.5 % right
    # (80 photos, quick model), false hands on 150 frames without one 5 -> 6 (0.6: 12).
    "min_scan_presence": 0.72,
    # ... each window at each of these turns (degrees): a sideways hand in a window is as
    # foreign to the landmark model as in a photo (validation scenes: 68.8 -> 72.5 % right).
    "scan_angles": [0, 90, -90],
    # Still images: the windows with the highest presence re-cropped from their own
    # landmarks and tried again (HandTracker._scan_all); 0: none. Validation scenes, scan
    # upright: 60.0 % -> 68.8 % right with 3 (8: the same).
    "scan_refine": 3,
    # The palm detector sees the whole region letterboxed to 192 px, where the palm of a hand a
    # quarter of a 480-row frame tall is ~15 px: too small for it. So it also runs on square
    # tiles of these sides (fractions of the region's shorter side, half-overlapping): every
    # tile for a still image, one per frame in turn for video while no hand is found. Palms
    # from all tiles are merged by the same weighted NMS. Empty list: the whole region only.
    "palm_tiles": [0.5],
    # Still images: when the hand found is small in the region (its box's longer side below
    # this fraction of the region's shorter side), the padded views (fallback_pads x
    # fallback_angles) are also taken around the hand: a square of hand_view_scale times the
    # box's longer side, as a tight photo of the hand would frame it.
    "hand_view_below": 0.6,
    "hand_view_scale": 1.4,
}


@dataclass
class Hand:
    """One hand, everything in the frame's pixels.

    ``handedness`` is MediaPipe's label: right for a mirrored (selfie-view) frame, i.e. the
    person's own left/right when the picture is mirrored; in an unmirrored camera frame or
    photo it names the person's other hand.
    """

    landmarks: np.ndarray   # (21, 3) float32: x, y in frame pixels; z relative depth, same scale
    world: np.ndarray       # (21, 3) world landmarks from the model (metres)
    presence: float
    handedness: str         # "left" or "right" (MediaPipe's mirrored-view convention, see above)
    handedness_score: float
    rect: tuple             # (cx, cy, w, h, angle_rad) frame pixels: the crop the model saw
    box: tuple              # (x, y, w, h) axis-aligned, frame pixels, around the landmarks
    crop: np.ndarray        # the landmark model's input picture, uint8 RGB 224x224
    detected: bool          # the palm detector ran for this result
    # Still images with ``still_views``: every accepted view as (landmarks (21, 3) frame px,
    # handedness, presence), the chosen one included. Empty: the chosen view alone.
    views: list = field(default_factory=list)

    def to_json(self) -> dict:
        """The result record's ``hand`` object (docs/contracts.md)."""
        return {"landmarks": [[round(float(v), 2) for v in point] for point in self.landmarks],
                "presence": round(self.presence, 4), "handedness": self.handedness,
                "detected": self.detected, "rect": [round(float(v), 4) for v in self.rect]}


class HandTracker:
    """Palm detector + landmark model, built once; ``process`` per frame (BGR uint8)."""

    def __init__(self, palm_path, landmark_path, model_format: str = "tflite",
                 threads: int = 2, roi=None, still: bool = False,
                 thresholds: dict | None = None, palm_format: str | None = None):
        self.palm = PalmDetector(palm_path, palm_format or model_format, threads)
        self.landmark = LandmarkModel(landmark_path, model_format, threads)
        self.roi = roi
        self.still = still
        unknown = set(thresholds or {}) - set(DEFAULT_THRESHOLDS)
        if unknown:
            raise ValueError(f"unknown hand thresholds {sorted(unknown)}")
        self.thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        self.reset()

    def reset(self) -> None:
        """Forget the tracked hand: the next frame starts with palm detection."""
        self.track_rect: tuple | None = None
        self.others = 0
        self.scan_index = -1
        self.tile_index = -1

    def process(self, frame_bgr: np.ndarray) -> tuple[Hand | None, dict]:
        """The chosen hand in this frame (or None) and timings:
        ``{"palm_ran", "hands_found", "others", "palm_ms", "landmark_ms"}``."""
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        self._info = {"palm_ran": False, "hands_found": 0, "others": 0, "palm_ms": 0.0,
                      "landmark_ms": 0.0}
        self._search = self._region(rgb)
        if self.still:
            hand = self._still(rgb)
        else:
            hand = self._track(rgb)
        self._info["hands_found"] = (1 + self._info["others"]) if hand else self._info["others"]
        return hand, self._info

    # --- video -----------------------------------------------------------------------------

    def _track(self, rgb: np.ndarray) -> Hand | None:
        if self.track_rect is not None:
            result = self._landmarks(rgb, self.track_rect)
            if self._accept(result):
                self.track_rect = landmarks_rect(result.landmarks)
                self._info["others"] = self.others
                return self._hand(result, rgb, detected=False)
            self.track_rect = None
        result = self._from_palms(rgb, self._detect(rgb))
        if result is None:
            result = self._tile_one(rgb)
        if result is None:
            result = self._scan_one(rgb)
        if result is None:
            return None
        self.track_rect = landmarks_rect(result.landmarks)
        return self._hand(result, rgb, detected=True)

    def _tile_one(self, rgb: np.ndarray) -> LandmarkResult | None:
        """Video: the palm detector on the next tile in turn (small, far hands)."""
        tiles = tile_boxes(self._search, self.thresholds["palm_tiles"])
        if not tiles:
            return None
        self.tile_index = (self.tile_index + 1) % len(tiles)
        return self._from_palms(rgb, self._detect(rgb, [tiles[self.tile_index]], whole=False))

    def _scan_one(self, rgb: np.ndarray) -> LandmarkResult | None:
        """Video: the next scan window in turn, one a frame without a palm (and, with
        ``scan_refine``, once more on its own landmarks' crop when it is not hand enough)."""
        windows = scan_windows(self._search, self.thresholds["scan_sides"],
                               self.thresholds["scan_angles"])
        if not windows:
            return None
        self.scan_index = (self.scan_index + 1) % len(windows)
        result = self._landmarks(rgb, windows[self.scan_index])
        if self.thresholds["scan_refine"] and result.presence < self.thresholds["min_scan_presence"]:
            result = max(result, self._recrop(rgb, result), key=lambda r: r.presence)
        return self._best_scan([result])

    # --- still images ----------------------------------------------------------------------

    def _still(self, rgb: np.ndarray) -> Hand | None:
        palms = self._detect(rgb)
        if self.thresholds["still_views"]:
            return self._still_views(rgb, palms)
        result = self._from_palms(rgb, palms)
        detected = result is not None
        if result is None:
            result = self._whole_image(rgb)
        if result is None:
            return None
        return self._hand(self._refined(rgb, result), rgb, detected=detected)

    def _refined(self, rgb: np.ndarray, result: LandmarkResult) -> LandmarkResult:
        """``result`` re-cropped from its own landmarks (``refine`` times, while accepted)."""
        for _ in range(int(self.thresholds["refine"])):
            again = self._recrop(rgb, result)
            if self._accept(again):
                result = again
        return result

    def _still_views(self, rgb: np.ndarray, palms: list[Palm]) -> Hand | None:
        """Every accepted view: the palms' crops, the padded whole-image views (else the scan),
        each also re-cropped once. The chosen hand (box, overlay) is the first palm's, else the
        best whole-image view's; ``views`` carries them all for the classifier."""
        self.others = max(0, len(palms) - 1)
        self._info["others"] = self.others
        from_palms = self._palm_views(rgb, palms)
        whole = sorted((r for r in self._padded_views(rgb) if self._accept(r)),
                       key=lambda r: -r.presence)
        accepted = from_palms + whole
        if not accepted:  # a hand too small for the whole-region passes: palms in tiles
            tiled = self._tiled_palms(rgb)
            self.others = max(0, len(tiled) - 1)
            self._info["others"] = self.others
            from_palms = accepted = self._palm_views(rgb, tiled)
        if not accepted:
            scanned = self._scan_all(rgb)
            accepted = [scanned] if scanned is not None else []
        if not accepted:
            return None
        accepted += [r for r in self._hand_views(rgb, accepted[0]) if self._accept(r)]
        views, chosen = [], None
        for result in accepted:
            again = self._recrop(rgb, result)
            refined = self._accept(again)
            views += [result, again] if refined else [result]
            chosen = chosen or (again if refined else result)
        hand = self._hand(chosen, rgb, detected=bool(from_palms))
        hand.views = [(view.landmarks, view.handedness, view.presence) for view in views]
        return hand

    def _palm_views(self, rgb: np.ndarray, palms: list[Palm]) -> list[LandmarkResult]:
        """The landmark model on the first ``max_palm_tries`` palms' crops; the accepted ones."""
        return [r for r in (self._landmarks(rgb, palm.crop_rect()) for palm in
                            palms[:int(self.thresholds["max_palm_tries"])]) if self._accept(r)]

    def _tiled_palms(self, rgb: np.ndarray) -> list[Palm]:
        return self._detect(rgb, tile_boxes(self._search, self.thresholds["palm_tiles"]),
                            whole=False)

    def _whole_image(self, rgb: np.ndarray) -> LandmarkResult | None:
        """The landmark model on the search region padded to a square (at each zoom-out), then
        the palms in tiles, then the scan windows; the best presence wins if it passes its
        threshold."""
        best = max(self._padded_views(rgb), key=lambda r: r.presence, default=None)
        if best is not None and self._accept(best):
            return best
        tiled = self._from_palms(rgb, self._tiled_palms(rgb))
        if tiled is not None:
            return tiled
        return self._scan_all(rgb)

    def _scan_all(self, rgb: np.ndarray) -> LandmarkResult | None:
        """Still images: the landmark model on every scan window, then the ``scan_refine``
        most hand-like windows again, each re-cropped from the landmarks it gave. A window
        rarely frames a hand as the landmark model wants it (centred, wrist down, a margin
        around it): off-centre, the model still sees part of a hand and says roughly where,
        but with a presence too low to accept; its own crop of that guess is the view it
        wants. The best presence wins if it passes ``min_scan_presence``."""
        scanned = [self._landmarks(rgb, rect) for rect in scan_windows(
            self._search, self.thresholds["scan_sides"], self.thresholds["scan_angles"])]
        hopeful = sorted(scanned, key=lambda r: -r.presence)[:int(self.thresholds["scan_refine"])]
        scanned += [self._recrop(rgb, r) for r in hopeful]
        return self._best_scan(scanned)

    def _padded_views(self, rgb: np.ndarray, region: tuple | None = None
                      ) -> list[LandmarkResult]:
        """The landmark model on ``region`` (default: the search region) padded to a square, at
        each of ``fallback_pads`` and ``fallback_angles``."""
        x, y, w, h = region or self._search
        side = max(w, h)
        return [self._landmarks(rgb, (x + w / 2, y + h / 2, side * pad, side * pad,
                                      math.radians(degrees)))
                for pad in self.thresholds["fallback_pads"]
                for degrees in self.thresholds["fallback_angles"]]

    def _hand_views(self, rgb: np.ndarray, found: LandmarkResult) -> list[LandmarkResult]:
        """Still images: the padded views around a hand that is small in the search region
        (a photo of the hand, as the whole-image views are for a tight photo); none for a hand
        that fills the region already."""
        x, y, w, h = axis_box(found.landmarks)
        longest = max(w, h)
        if longest >= self.thresholds["hand_view_below"] * min(self._search[2:]):
            return []
        side = longest * self.thresholds["hand_view_scale"]
        return self._padded_views(rgb, (x + w / 2 - side / 2, y + h / 2 - side / 2, side, side))

    def _best_scan(self, results: list[LandmarkResult]) -> LandmarkResult | None:
        best = max(results, key=lambda r: r.presence, default=None)
        if best is None or best.presence < self.thresholds["min_scan_presence"]:
            return None
        return best if self._accept(best) else None

    # --- shared steps ----------------------------------------------------------------------

    def _region(self, rgb: np.ndarray) -> tuple[int, int, int, int]:
        """The search region (x, y, w, h): the ROI clipped to the frame, else the frame."""
        height, width = rgb.shape[:2]
        if self.roi is None:
            return 0, 0, width, height
        x0, y0 = max(0, int(self.roi.x)), max(0, int(self.roi.y))
        x1 = min(width, int(self.roi.x) + int(self.roi.width))
        y1 = min(height, int(self.roi.y) + int(self.roi.height))
        if x1 <= x0 or y1 <= y0:
            return 0, 0, width, height
        return x0, y0, x1 - x0, y1 - y0

    def _detect(self, rgb: np.ndarray, tiles: list[tuple] = (), whole: bool = True
                ) -> list[Palm]:
        """Palms in the search region (``whole``) and in each of ``tiles`` (x, y, w, h), in
        frame pixels, merged across tiles, ordered by the choice rule."""
        regions = ([self._search] if whole else []) + list(tiles)
        start = time.perf_counter()
        palms = []
        for x, y, w, h in regions:
            found = self.palm.detect(rgb[y:y + h, x:x + w], self.thresholds["min_palm_score"],
                                     self.thresholds["nms_iou"])
            for palm in found:
                palm.box = (palm.box[0] + x, palm.box[1] + y, palm.box[2] + x, palm.box[3] + y)
                palm.keypoints = palm.keypoints + np.array([x, y], np.float32)
            palms += found
        self._info["palm_ms"] += (time.perf_counter() - start) * 1000
        self._info["palm_ran"] = True
        if len(regions) > 1:
            palms = merge_palms(palms, self.thresholds["nms_iou"])
        return choose_palms(palms)

    def _from_palms(self, rgb: np.ndarray, palms: list[Palm]) -> LandmarkResult | None:
        """The first palm (in choice order) whose crop the landmark model accepts."""
        self.others = max(0, len(palms) - 1)
        self._info["others"] = self.others
        for palm in palms[:int(self.thresholds["max_palm_tries"])]:
            result = self._landmarks(rgb, palm.crop_rect())
            if self._accept(result):
                return result
        return None

    def _landmarks(self, rgb: np.ndarray, rect: tuple) -> LandmarkResult:
        start = time.perf_counter()
        result = self.landmark.run(rgb, rect)
        self._info["landmark_ms"] += (time.perf_counter() - start) * 1000
        return result

    def _recrop(self, rgb: np.ndarray, result: LandmarkResult) -> LandmarkResult:
        """The landmark model again, on the crop ``result``'s own landmarks give (as tracking
        crops the next frame): centred and upright the way the model wants its hand."""
        return self._landmarks(rgb, landmarks_rect(result.landmarks))

    def _accept(self, result: LandmarkResult) -> bool:
        """Present enough, and (with an ROI) its centre inside the search region."""
        if result.presence < self.thresholds["min_presence"]:
            return False
        if self.roi is None:
            return True
        x, y, w, h = self._search
        cx, cy = result.landmarks[:, :2].mean(axis=0)
        return x <= cx <= x + w and y <= cy <= y + h

    def _hand(self, result: LandmarkResult, rgb: np.ndarray, detected: bool) -> Hand:
        height, width = rgb.shape[:2]
        x, y, w, h = axis_box(result.landmarks)
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(width), x + w), min(float(height), y + h)
        return Hand(result.landmarks, result.world, result.presence, result.handedness,
                    result.handedness_score, result.rect, (x0, y0, max(0.0, x1 - x0),
                                                           max(0.0, y1 - y0)),
                    result.crop, detected)


def max_views(thresholds: dict) -> int:
    """The most views a still image's ``Hand.views`` can hold: the palms' crops, the padded
    views of the region and around a small hand, each re-cropped once."""
    padded = len(thresholds["fallback_pads"]) * len(thresholds["fallback_angles"])
    return 2 * (int(thresholds["max_palm_tries"]) + 2 * padded)


def scan_windows(region: tuple, sides: list[float], angles=(0,)) -> list[tuple]:
    """Upright square crops over ``region`` (x, y, w, h): for each side fraction f of the shorter
    side, as few windows as cover the region with at least a quarter overlap. Each window is
    scaled out 1.25 so a hand reaching its edge is still whole."""
    x, y, w, h = region
    rects = []
    for fraction in sides:
        side = fraction * min(w, h)
        step = side * 0.75
        columns = max(1, int(np.ceil((w - side) / step)) + 1)
        rows = max(1, int(np.ceil((h - side) / step)) + 1)
        for row in range(rows):
            for column in range(columns):
                cx = x + side / 2 + (w - side) * (column / (columns - 1) if columns > 1 else 0.5)
                cy = y + side / 2 + (h - side) * (row / (rows - 1) if rows > 1 else 0.5)
                rects += [(cx, cy, side * 1.25, side * 1.25, math.radians(degrees))
                          for degrees in angles]
    return rects


def tile_boxes(region: tuple, sides: list[float]) -> list[tuple]:
    """Integer square tiles (x, y, w, h) over ``region``: for each side fraction f of the
    shorter side, a half-overlapping grid that covers it edge to edge."""
    x, y, w, h = (int(v) for v in region)
    tiles = []
    for fraction in sides:
        side = int(round(fraction * min(w, h)))
        if side < 32 or side >= min(w, h):
            continue
        step = side / 2
        columns = int(np.ceil((w - side) / step)) + 1
        rows = int(np.ceil((h - side) / step)) + 1
        for row in range(rows):
            for column in range(columns):
                left = x + int(round((w - side) * column / max(1, columns - 1)))
                top = y + int(round((h - side) * row / max(1, rows - 1)))
                tiles.append((left, top, side, side))
    return tiles


def merge_palms(palms: list[Palm], iou_threshold: float) -> list[Palm]:
    """One palm per hand when tiles overlap: the weighted NMS of the palm detector, on palms."""
    if len(palms) < 2:
        return palms
    scores = np.array([palm.score for palm in palms], np.float32)
    boxes = np.array([palm.box for palm in palms], np.float32)
    keypoints = np.stack([np.asarray(palm.keypoints, np.float32) for palm in palms])
    return [Palm(score, tuple(float(v) for v in box), points)
            for score, box, points in weighted_nms(scores, boxes, keypoints, iou_threshold)]


def choose_palms(palms: list[Palm]) -> list[Palm]:
    """The choice rule: largest palm box first (the hand nearest the camera)."""
    return sorted(palms, key=lambda palm: -palm.area)
