"""Find the subject against its background and frame it the way the training photos were framed.

Fruits-360 was made by photographing each fruit on white, segmenting it from the white and
scaling it to fill the 100x100 frame. A camera sees the fruit somewhere on a table or a wall, at
any size. This step finds it and cuts a square around it, so the model gets a picture framed
like its training photos. When nothing stands out from the background (an empty table, a blank
wall, a covered lens) it says so, and the frame pipeline answers ``nothing``.

How, on a small copy of the search region (about 60 px on its shorter side, well under 1 ms):

1. **Background model from the border.** The region's outer ring is taken to be background; a
   smooth surface (quadratic in x and y, per CIELAB channel) fitted to it, refitted without the
   ring's outliers (a subject touching the edge), predicts the background everywhere, lamp
   gradient and vignette included.
2. **Difference from it** per pixel: colour (a*, b*) difference, plus brightness where a pixel
   is brighter than the background, or darker than a shadow makes it (a cast shadow dims a
   surface to 50-75 %: by itself it is not the subject). A pixel whose colour also occurs on
   the border keeps only :data:`SEEN_COLOUR` of it (a busy, many-coloured background).
3. **Texture-aware threshold.** The difference is smoothed (wood grain and plaster average out)
   and compared with how much it varies along the ring, never below :data:`MIN_CONTRAST`.
4. **The subject** is the region above it that stands out most (summed excess over the
   threshold; regions running into the border count less: they are mostly background), at
   least :data:`MIN_AREA` of the search area; its box, squared and padded by :data:`MARGIN`,
   is what the model looks at. The box is that region's core (:func:`subject_box`).
5. **A white card under it** (a printed photo held up, a sheet of paper, a plate): when the
   subject sits on a near-white, card-shaped patch that ends inside the view, the card is the
   frame, as the studio's white was for Fruits-360 (:func:`white_card`). On a busy background
   the difference step alone cuts a card and the patches beside it into odd pieces.

``--roi`` bounds the search; by default the whole frame is searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

#: The work image's shorter side, in pixels.
WORK_SIDE = 60
#: The grid (columns, rows) the smooth background surface is evaluated on before scaling up.
COARSE = (16, 12)
#: The border ring's width, as a fraction of the work image's shorter side.
RING = 0.04
#: Smallest subject, as a fraction of the search area (a fruit 1/6 of a 480 px frame tall is
#: ~1.6 % of it).
MIN_AREA = 0.004
#: The smoothed difference must exceed this (CIELAB units) whatever the background.
MIN_CONTRAST = 14.0
#: ... but never above this: a busy background must not hide a clear subject.
MAX_CONTRAST = 45.0
#: The subject's edge: this fraction of its typical (90th percentile) difference.
REFINE = 0.5
#: A region touching the search area's border counts this much (background patches do).
BORDER_PENALTY = 0.3
#: ... and this many robust standard deviations of the ring's own difference (texture).
RING_SIGMAS = 4.0
#: A cast shadow leaves a surface at least this bright (fraction of the background): anything
#: darker is a dark subject, anything between is shadow.
SHADOW_FLOOR = 0.55
#: The square around the subject, relative to its longer side (Fruits-360 leaves ~5 % of white).
MARGIN = 1.12


@dataclass(frozen=True)
class Located:
    """A square box in frame pixels (x, y, side), or None: nothing stands out."""

    box: tuple[int, int, int] | None
    others: int = 0


def design_matrix(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Quadratic terms of normalised coordinates: the shape of a lamp's falloff."""
    return np.column_stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys])


@lru_cache(maxsize=8)
def ring_design(height: int, width: int, ring: int) -> tuple[tuple, np.ndarray, np.ndarray]:
    """For a work image of this size: the ring's slices, its design matrix and the coarse grid's
    (cached: the frame size rarely changes)."""
    yy, xx = np.mgrid[0:height, 0:width]
    parts = (np.s_[:ring, :], np.s_[-ring:, :], np.s_[ring:-ring, :ring], np.s_[ring:-ring, -ring:])
    xs = np.concatenate([xx[p].ravel() for p in parts]) / width - 0.5
    ys = np.concatenate([yy[p].ravel() for p in parts]) / height - 0.5
    gy, gx = np.mgrid[0:COARSE[1], 0:COARSE[0]].astype(np.float64)
    grid = design_matrix((gx.ravel() + 0.5) / COARSE[0] - 0.5, (gy.ravel() + 0.5) / COARSE[1] - 0.5)
    return parts, design_matrix(xs, ys), grid


def background_model(lab: np.ndarray, ring: int) -> tuple[np.ndarray, np.ndarray]:
    """The background predicted at every pixel from the ring, robust to a subject touching it,
    and the ring's colours that fit it (not the subject's).

    The surface is smooth by construction, so it is evaluated on a coarse grid and scaled up.
    """
    height, width = lab.shape[:2]
    parts, design, grid = ring_design(height, width, ring)
    values = np.concatenate([lab[p].reshape(-1, 3) for p in parts])
    keep = np.ones(len(values), bool)
    for _ in range(2):
        kept = design[keep]  # least squares by its 6x6 normal equations: 2x lstsq's speed
        coeffs = np.linalg.solve(kept.T @ kept, kept.T @ values[keep])
        residual = np.abs(values - design @ coeffs).sum(axis=1)
        spread = np.median(residual[keep]) * 1.5 + 2.0
        keep = residual < 3.0 * spread
        if keep.sum() < design.shape[1] * 4:
            break
    coarse = (grid @ coeffs).reshape(COARSE[1], COARSE[0], 3).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR), values[keep]


#: The difference left to a pixel whose colour the border also shows.
SEEN_COLOUR = 0.3
#: CIELAB (8-bit) bins for "a colour the border has": 8 levels of L, a and b each (as bit
#: shifts); with the neighbouring bins a colour is "seen" within 8-16 levels. Bins of 16 in L
#: (16-32 levels with neighbours) let a dark red apple pass for the dark grain of a brown table:
#: fruits anywhere 0.89 -> 0.91, photos in a busy scene 0.98 -> 0.985, empty scenes still 0 %.
BIN_SHIFTS = np.array([3, 3, 3], np.int32)
#: The bin table's shape, padded by one bin on every side so a bin's neighbours never fall off it.
BIN_TABLE = (256 // 8 + 2, 256 // 8 + 2, 256 // 8 + 2)
#: Flat offsets of a bin's 27 neighbours (itself included) in that table.
NEIGHBOURS = np.array([dl * BIN_TABLE[1] * BIN_TABLE[2] + da * BIN_TABLE[2] + db
                       for dl in (-1, 0, 1) for da in (-1, 0, 1) for db in (-1, 0, 1)], np.intp)


def colour_bins(colours: np.ndarray) -> np.ndarray:
    """Flat bin index (in the padded table) of each CIELAB colour (..., 3), 0-255 values."""
    bins = (colours.astype(np.int32) >> BIN_SHIFTS) + 1
    return ((bins[..., 0] * BIN_TABLE[1] + bins[..., 1]) * BIN_TABLE[2] + bins[..., 2]).astype(
        np.intp)


def border_colours(lab: np.ndarray, ring_colours: np.ndarray) -> np.ndarray:
    """Per pixel: is its colour one the border also shows (within a bin)? A busy background
    (a poster, a patterned cloth) is not one smooth surface, but its colours recur; a subject's
    colours mostly do not. The ring's bins and their neighbours are marked in a flat table and
    each pixel looks its own bin up (integer shifts: a float floor-divide costs 5x more)."""
    seen = np.zeros(BIN_TABLE[0] * BIN_TABLE[1] * BIN_TABLE[2], bool)
    seen[(colour_bins(ring_colours)[:, None] + NEIGHBOURS).ravel()] = True
    return seen[colour_bins(lab)]


def difference(lab: np.ndarray, background: np.ndarray) -> np.ndarray:
    """How unlike the background each pixel is (CIELAB units), shadows discounted."""
    chroma = np.hypot(lab[:, :, 1] - background[:, :, 1], lab[:, :, 2] - background[:, :, 2])
    ratio = (lab[:, :, 0] + 8.0) / (background[:, :, 0] + 8.0)
    brighter = np.maximum(ratio - 1.0, 0.0) * 120.0
    darker = np.maximum(SHADOW_FLOOR - ratio, 0.0) * 200.0
    return chroma + brighter + darker


def shrink(region: np.ndarray, side: int = WORK_SIDE) -> tuple[np.ndarray, int]:
    """Area-average by a whole factor (OpenCV's fast path) to about ``side`` px; the factor.
    Averaging 8x8 blocks also removes sensor noise and fine texture (a weave, paper grain)."""
    return shrink_by(region, max(1, min(region.shape[:2]) // side))


def shrink_by(region: np.ndarray, factor: int) -> tuple[np.ndarray, int]:
    """Area-average ``region`` by the whole ``factor`` (OpenCV's fast path)."""
    if factor == 1:
        return region, 1
    h, w = (region.shape[0] // factor) * factor, (region.shape[1] // factor) * factor
    return cv2.resize(region[:h, :w], (w // factor, h // factor),
                      interpolation=cv2.INTER_AREA), factor


def square_box(x: int, y: int, w: int, h: int, bounds: tuple[int, int, int, int]
               ) -> tuple[int, int, int]:
    """A square of side ``MARGIN`` x the longer side, centred on the box, moved (not cut) to
    stay inside ``bounds`` (x, y, w, h); no larger than the bounds' shorter side."""
    bx, by, bw, bh = bounds
    side = int(min(max(w, h) * MARGIN, bw, bh))
    left = int(round(x + w / 2 - side / 2))
    top = int(round(y + h / 2 - side / 2))
    left = min(max(left, bx), bx + bw - side)
    top = min(max(top, by), by + bh - side)
    return left, top, side


def subject_box(diff: np.ndarray, region: np.ndarray, threshold: float
                ) -> tuple[int, int, int, int]:
    """The box (work pixels) of the region's core: where its difference is above half its
    typical peak. On the smoothed difference, half the peak sits on the subject's true edge,
    and background patches that merely touch it (less distinct than the subject) fall away."""
    level = max(threshold, REFINE * float(np.percentile(diff[region], 90)))
    core = (region & (diff > level)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if count <= 1:
        ys, xs = np.nonzero(region)
        return int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1
    areas = stats[1:, cv2.CC_STAT_AREA]
    parts = stats[1:][areas >= 0.1 * areas.max()]
    left, top = parts[:, 0].min(), parts[:, 1].min()
    right, bottom = (parts[:, 0] + parts[:, 2]).max(), (parts[:, 1] + parts[:, 3]).max()
    return int(left), int(top), int(right - left), int(bottom - top)


def touches_border(stats: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per component (rows of OpenCV stats): does its box reach the work image's edge?"""
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    return ((left == 0) | (top == 0) | (left + stats[:, cv2.CC_STAT_WIDTH] >= width)
            | (top + stats[:, cv2.CC_STAT_HEIGHT] >= height))


def locate(frame: np.ndarray, bounds: tuple[int, int, int, int]) -> Located:
    """The subject's square box inside ``bounds`` (x, y, w, h) of a BGR ``frame``."""
    bx, by, bw, bh = bounds
    small, factor = shrink(frame[by:by + bh, bx:bx + bw])
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2Lab).astype(np.float32)
    height, width = lab.shape[:2]
    ring = max(2, int(round(RING * min(height, width))))
    background, ring_colours = background_model(lab, ring)
    diff = difference(lab, background)
    diff[border_colours(lab, ring_colours)] *= SEEN_COLOUR
    diff = cv2.blur(diff, (5, 5))
    edge = np.concatenate([diff[:ring].ravel(), diff[-ring:].ravel(),
                           diff[:, :ring].ravel(), diff[:, -ring:].ravel()])
    centre = float(np.median(edge))
    spread = float(np.median(np.abs(edge - centre))) * 1.4826
    threshold = min(max(MIN_CONTRAST, centre + RING_SIGMAS * spread), MAX_CONTRAST)
    mask = (diff > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return Located(None)
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = areas >= MIN_AREA * height * width
    if not big.any():
        return Located(None)
    # How much each region stands out (its summed excess over the threshold), less for regions
    # that run into the border: those are most often the background's own patches.
    excess = np.bincount(labels.ravel(), weights=(diff - threshold).ravel(),
                         minlength=count)[1:]
    score = np.where(big, excess, 0.0) * np.where(touches_border(stats[1:], width, height),
                                                  BORDER_PENALTY, 1.0)
    best = int(np.argmax(score))
    others = int(np.sum(score >= 0.25 * score[best])) - 1
    x, y, w, h = (v * factor for v in subject_box(diff, labels == best + 1, threshold))
    box = square_box(bx + x, by + y, w, h, bounds)
    return Located(white_card(frame, small, factor, box, bounds) or box, others)


#: How far around the subject's box a card is looked for (times the box's side).
CARD_SEARCH = 2.5
#: Near-white: the darkest channel at least this fraction of the window's brightest level ...
CARD_WHITE = 0.82
#: ... and the channels within this fraction of it of each other (no colour).
CARD_CHROMA = 0.12
#: The card step's copy of its window is this many times finer than the locator's.
CARD_DETAIL = 2


def white_pixels(window: np.ndarray) -> np.ndarray | None:
    """Near-white, colourless pixels of a small BGR window, relative to its own brightest
    level (a white card under a dim lamp is grey); None when the window has no light part."""
    blue, green, red = cv2.split(window)  # OpenCV's per-pixel max/min: 10x numpy's axis=2
    high = cv2.max(cv2.max(blue, green), red)
    low = cv2.min(cv2.min(blue, green), red)
    level = float(np.percentile(high, 99.5))
    if level < 80:
        return None
    return (low >= CARD_WHITE * level) & (cv2.subtract(high, low) <= CARD_CHROMA * level)


def white_card(frame: np.ndarray, small: np.ndarray, factor: int, box: tuple[int, int, int],
               bounds: tuple[int, int, int, int]) -> tuple[int, int, int] | None:
    """The square of a white card the subject at ``box`` (frame pixels) lies on, or None.

    A card: the near-white pixels touching the subject's box (with the white pieces that
    complete them, :func:`card_parts`), whose bounding box ends inside the window searched
    around it (white that runs on is a pale wall or table, not a card), is roughly square, at
    least 15 % of the box, white along most of its edge, and holds something that is not white.

    First on the locator's own small copy (``small``, ``factor`` times smaller than the
    region; nearly free). Where white touches the box but makes no card there, again on a copy
    :data:`CARD_DETAIL` times finer: a Fruits-360 photo's white margin is ~5 % of its side, one
    or two of the locator's pixels at 200-300 px, where block averages blur it away. And if the
    window around the box cuts the card (the box is a piece of the subject: a dark half, a
    patch beside the card), once more in the whole search region. Measured (fruit photos held
    up in a busy scene, 200 frames each, the runner's defaults): at 200-300 px 0.81 -> 0.955
    with the first card step, 0.96 -> 0.99 with the finer passes; at the 0.6 box's size 0.84
    -> 0.98, then 0.985 -> 0.99; fruits lying on tables and walls and empty scenes unchanged."""
    bx, by, bw, bh = bounds
    half = box[2] * CARD_SEARCH / 2
    centre_x, centre_y = box[0] + box[2] / 2, box[1] + box[2] / 2
    window = (int(max(bx, centre_x - half)), int(max(by, centre_y - half)),
              int(min(bx + bw, centre_x + half)), int(min(by + bh, centre_y + half)))
    # The coarse pass works in the small copy's pixels: the window snapped to its grid.
    cols = [(window[0] - bx) // factor, -(-(window[2] - bx) // factor)]
    rows = [(window[1] - by) // factor, -(-(window[3] - by) // factor)]
    found = card_in(small[rows[0]:rows[1], cols[0]:cols[1]], factor,
                    (bx + cols[0] * factor, by + rows[0] * factor), box, bounds)
    fine = max(1, factor // CARD_DETAIL)
    for search in (window, (bx, by, bx + bw, by + bh)):
        if found != "not a card" or fine == factor and search == window:
            break
        left, top = search[0] // fine * fine, search[1] // fine * fine
        image, _ = shrink_by(frame[top:search[3], left:search[2]], fine)
        found = card_in(image, fine, (left, top), box, bounds)
    return None if found == "not a card" else found


def card_parts(stats: np.ndarray, touching: np.ndarray) -> np.ndarray:
    """The white components (labels) of one card: those touching the subject's box, then every
    one whose box meets theirs, then, while their box is not square, every one lying wholly
    within the square their box would complete. A fruit that reaches the card's edges cuts its
    white into corners and strips (a strip above the fruit, one below); together they span
    the card."""
    parts = set(int(t) for t in touching)
    boxes = stats[1:, :4].astype(np.int64)
    left, top, right, bottom = (boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2],
                                boxes[:, 1] + boxes[:, 3])
    for _ in range(4):
        chosen = stats[sorted(parts), :4].astype(np.int64)
        x0, y0 = chosen[:, 0].min(), chosen[:, 1].min()
        x1, y1 = (chosen[:, 0] + chosen[:, 2]).max(), (chosen[:, 1] + chosen[:, 3]).max()
        meets = (left <= x1 + 1) & (right >= x0 - 1) & (top <= y1 + 1) & (bottom >= y0 - 1)
        side = max(x1 - x0, y1 - y0)
        if x1 - x0 >= y1 - y0:  # wide: the rest of the card is above or below
            square = ((left >= x0 - 2) & (right <= x1 + 2) & (top >= y1 - side - 2)
                      & (bottom <= y0 + side + 2))
        else:
            square = ((top >= y0 - 2) & (bottom <= y1 + 2) & (left >= x1 - side - 2)
                      & (right <= x0 + side + 2))
        grown = parts | set(int(i) + 1 for i in np.flatnonzero(meets | square))
        if grown == parts:
            break
        parts = grown
    return np.array(sorted(parts))


def card_in(image: np.ndarray, scale: int, origin: tuple[int, int], box: tuple[int, int, int],
            bounds: tuple[int, int, int, int]) -> tuple[int, int, int] | str | None:
    """:func:`white_card` in one window: ``image`` is it at 1/``scale``, its corner at
    ``origin`` in the frame. The card's square box; ``"not a card"`` when white touches the box
    but is not card-shaped (or reaches the window's edge); None when no white touches it."""
    left, top = origin
    white = white_pixels(image)
    if white is None:
        return None
    rows, cols = white.shape
    near = np.zeros_like(white)
    near[max(0, (box[1] - top) // scale):(box[1] + box[2] - top) // scale + 1,
         max(0, (box[0] - left) // scale):(box[0] + box[2] - left) // scale + 1] = True
    _, labels, stats, _ = cv2.connectedComponentsWithStats(white.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[near & white])
    touching = touching[touching > 0]
    if not len(touching):
        return None
    parts = card_parts(stats, touching)
    x0, y0 = stats[parts, 0].min(), stats[parts, 1].min()
    x1, y1 = (stats[parts, 0] + stats[parts, 2]).max(), (stats[parts, 1] + stats[parts, 3]).max()
    if x0 == 0 or y0 == 0 or x1 >= cols or y1 >= rows:
        return "not a card"
    inside = np.isin(labels[y0:y1, x0:x1], parts)
    edge = np.concatenate([inside[0], inside[-1], inside[:, 0], inside[:, -1]])
    card_w, card_h = (x1 - x0) * scale, (y1 - y0) * scale
    if (card_w * card_h < 0.15 * box[2] ** 2 or edge.mean() < 0.4
            or not 0.05 <= inside.mean() <= 0.92 or max(card_w, card_h) > 1.3 * min(card_w, card_h)):
        return "not a card"
    return square_box(left + x0 * scale, top + y0 * scale, card_w / MARGIN, card_h / MARGIN,
                      bounds)
