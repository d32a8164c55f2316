"""Digits on real paper: the ink step that finds the digit to read and turns it into MNIST.

Real paper is harder than a clean sheet: a fine pen (1-2 px strokes), blue or red ink, ruled or
squared paper, a shadow across the page, the sheet tilted, a digit at the edge of the box,
several digits in view. The steps, each for one of those:

1. **Dark-preserving shrink** (:func:`shrink_keeping_ink`): the region is reduced to a small
   work image by a minimum filter then an area average, so a 1 px pen line keeps its darkness
   (a plain area average of 5x5 pixels would dilute it 5 times, to the level of paper noise).
2. **Light flattening** (device/camera.py ``flatten_light``): the paper's own brightness,
   shadow edges included, is divided out; what is left is "inkness", 0 = paper. Ink thicker
   than the flattening's disc (a filled loop) is flattened again with a wider one.
3. **Ink, not printing** (:func:`pen_mask`): the printed lines of ruled and squared paper
   are light (inkness ~0.1-0.2) and a pen is dark (0.4-0.9), so the threshold never drops below
   :data:`MIN_INK`, and rises with the darkest ink in view; families of long parallel straight
   lines (:func:`printed_lines`) never start or carry a stroke where they are not pen-dark,
   though a stroke may grow a pixel or two across them (a fine pen crossing a ruled line stays
   whole); off the printing, a stroke is followed a few pixels across its fades.
   A component that runs across the box from edge to edge is a line or a table's grain, never
   a digit.
4. **Digits, not strokes** (:func:`digit_groups`): strokes close together form one digit (a 5
   in two pieces), and a shorter piece drawn after lifting the pen (a 5's flag, a 6's loop)
   joins the digit beside it from further away, but two digits of full height side by side
   stay two; the digit nearest the centre of the box is read and the others are counted.
   A box in many more pieces than any writing is a texture (wood grain on a pale table).

5. **A closer look** (:func:`read_digit`): a fine pen's digit in a large box (a whole frame)
   is found coarse, then steps 1-4 run again on a square around it, so it is read at finer
   detail with the paper and the pen judged around the digit, not across the page.

Blank paper, or paper with only its printed lines, has no ink left after step 3: ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.camera import centre_by_mass, flatten_light, light_disc, normalise_stroke

#: The work image's shorter side: enough for a 20 px MNIST digit that fills a third of it.
WORK_SIDE = 80
#: A fine pen's digit in a box at least this many times :data:`FIND_SIDE` on its shorter side
#: (180 px: a webcam's 0.6 box, a whole frame) is read twice (:func:`read_digit`): found in
#: the usual work image, then read again from a square :data:`ZOOM_SIDE` times its longer
#: side, shrunk to about :data:`FIND_SIDE`.
ZOOM_FACTOR = 3
FIND_SIDE = 60
#: Shrunk 6 times with the whole frame, a 120-180 px digit is 20-30 work pixels tall, and
#: the paper and the pen's threshold are judged on the whole page (its shadow, its lines).
#: Around the digit alone (shrunk 2-5 times) the harder paper, five draws of 300 (folder /
#: webcam default), went 0.969 / 0.971 -> 0.976 / 0.974, the first footage and the empty
#: pages level. A second reading that kept the first's paper estimate and digit mask gained
#: nothing (0.967 / 0.969): the gain is in the local flattening and threshold.
ZOOM_SIDE = 2.0
#: Only a digit whose ink is at most this deep in the first work image (work pixels from a
#: stroke's middle to its edge: a fine pen; MNIST's own strokes on paper, 10th-90th
#: percentile, are 2.9-7.8) gets the second look: it costs about 1 ms, and every digit
#: read twice put the camera step at 3.3-3.7 ms in ``device bench``, against 2 ms.
ZOOM_MAX_DEPTH = 1.5
#: Inkness below this is paper, its printed lines or noise, whatever the pen: a stroke must
#: reach it somewhere (hysteresis seeds) ...
MIN_INK = 0.22
#: ... and may continue down to this next to such a seed (a 1 px ballpoint line fades in and
#: out along its length; the printed lines stay below it).
MIN_INK_LOW = 0.14
#: Printed lines are searched among pixels above this ...
PRINT_LEVEL = 0.1
#: ... and ink on them is still pen where darker than this (a stroke crossing a line).
PEN_OVER_PRINT = 0.3
#: A stroke is followed this many pixels beyond its seeds along pixels above the low threshold
#: (off the printing): across the fades of a fine pen, not along a missed printed line.
FOLLOW_STEPS = 4
#: A speck-sized piece is kept when a chain of at most this many such pieces, each within two
#: pixels of the next, links it to a stroke (a fine pen broken along a printed line).
SPECK_CHAIN = 3
#: Both are also at least this fraction of the darkest ink in view (a faint line beside a
#: dark digit is not part of it).
PEAK_FRACTION = 0.4
#: A digit covers well under this fraction of the box; more "ink" means no paper in view.
MAX_INK_FRACTION = 0.5
#: Paper is a light, nearly neutral surface: a box whose typical colour is more saturated than
#: this (a wooden table: 0.3-0.7) or darker than :data:`MIN_PAPER_LEVEL` (a covered lens) holds
#: no paper. White paper under a warm lamp stays below 0.25. Coloured notes are not paper here.
MAX_PAPER_SATURATION = 0.3
MIN_PAPER_LEVEL = 40
#: The light flattening's disc must be wider than the thickest ink, or the middle of a filled
#: loop (a thick pen's 6, a 5's blotted flag) is taken for paper and comes out grey: when the
#: digit's ink is deeper than the disc over this factor (depth: the distance from its middle
#: to its edge), the box is flattened again with a disc this many times that depth.
DISC_PER_DEPTH = 4.0


@dataclass
class InkReading:
    """The MNIST patch of the digit to read (None: no digit) and how many other digits."""

    patch: np.ndarray | None
    others: int = 0


def shrink_factor(shape: tuple[int, ...], side: int = WORK_SIDE) -> int:
    """The whole factor :func:`shrink_keeping_ink` shrinks an image of ``shape`` by."""
    # A panorama or a sliver (12000x200, 1x20000) is shrunk to at most 16 side x side work
    # pixels too (flattening's disc grows with the longer side: seconds a frame otherwise),
    # and never by more than its shorter side (which would leave nothing).
    budget = int(np.ceil(np.sqrt(shape[0] * shape[1] / (16.0 * side * side))))
    factor = max(1, min(shape[:2]) // side, budget)
    return min(factor, max(1, min(shape[:2])))


def shrink_keeping_ink(gray: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """Shrink by a whole factor so the shorter side is about ``side``, keeping thin dark lines.

    A minimum filter as wide as the factor first spreads each dark pixel over its block, then
    the area average (OpenCV's fast integer path) reduces it: a 1 px stroke comes out one work
    pixel wide at full darkness, a 6 px stroke two pixels wide; stroke widths even out, as in
    MNIST. Paper noise's dark tail lowers the paper level uniformly, which flattening removes.
    """
    factor = shrink_factor(gray.shape, side)
    if factor == 1:
        return gray
    h, w = (gray.shape[0] // factor) * factor, (gray.shape[1] // factor) * factor
    darkest = cv2.erode(gray[:h, :w], np.ones((factor, factor), np.uint8))
    return cv2.resize(darkest, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def percentile_of(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) by a partial sort: a third of its
    time on a work image, where its overhead was 0.1 ms of the frame's budget twice over."""
    flat = values.ravel()
    position = q / 100.0 * (flat.size - 1)
    low = int(position)
    high = min(low + 1, flat.size - 1)
    part = np.partition(flat, (low, high))
    return float(part[low] + (position - low) * (part[high] - part[low]))


def ink_threshold(inkness: np.ndarray) -> float:
    """The inkness above which a pixel is pen: never below :data:`MIN_INK` (paper, printed
    lines, noise), and at least :data:`PEAK_FRACTION` of the darkest ink in view."""
    peak = percentile_of(inkness, 99.7)
    return max(MIN_INK, PEAK_FRACTION * peak)


def printed_lines(inkness: np.ndarray) -> np.ndarray:
    """Where the sheet's own printing is: straight lines across most of the box that come in
    parallel families (ruled lines, a squared grid). A shadow can darken them to a pen's
    level, and they then break into dashes; a lone straight stroke (a 1) is no family."""
    side = min(inkness.shape)
    faint = (inkness > PRINT_LEVEL).astype(np.uint8)
    found = cv2.HoughLinesP(faint, 1, np.pi / 180, threshold=int(0.35 * side),
                            minLineLength=int(0.5 * side), maxLineGap=4)
    printed = np.zeros(inkness.shape, np.uint8)
    if found is None:
        return printed.astype(bool)
    segments = found.reshape(-1, 4)
    angles = np.degrees(np.arctan2(segments[:, 3] - segments[:, 1],
                                   segments[:, 2] - segments[:, 0])) % 180
    apart = np.abs(angles[:, None] - angles[None, :])
    parallel = (np.minimum(apart, 180 - apart) < 6).sum(axis=1) >= 4
    for x0, y0, x1, y1 in segments[parallel]:
        cv2.line(printed, (int(x0), int(y0)), (int(x1), int(y1)), 1, 2)
    return printed.astype(bool)


def pen_mask(inkness: np.ndarray) -> np.ndarray:
    """Hysteresis: pixels above :func:`ink_threshold` (seeds), grown :data:`FOLLOW_STEPS`
    times into neighbours above the low threshold away from the printed lines (a pixel's
    margin), then twice more into any neighbour above it, printed lines included.

    A fine pen fades in and out along its length (1 px in a shadow: 0.13-0.2 inkness, a seed
    only here and there); following it between its seeds keeps a 6's loop and a 9's bowl,
    where two steps cut them off. Noise alone does not start a stroke. Printing neither seeds
    nor carries one; but a stroke may grow a pixel or two across it: a fine pen that crosses a
    ruled line is no darker than the line there, and cutting it at every crossing leaves a digit
    in pieces (a 6 read as its stem) and a margin line as dashes (read as a 1). The following
    is bounded too: a ruled line the printing search missed (dashes in a deep shadow) is not
    carried across the page.
    """
    high = ink_threshold(inkness)
    strong = (inkness > high).astype(np.uint8)
    weak = (inkness > max(MIN_INK_LOW, high * MIN_INK_LOW / MIN_INK)).astype(np.uint8)
    printed = printed_lines(inkness)
    strong[printed & (inkness < PEN_OVER_PRINT)] = 0
    step = np.ones((3, 3), np.uint8)
    off_print = weak & (cv2.dilate(printed.astype(np.uint8), step) == 0) | strong
    for allowed, steps in ((off_print, FOLLOW_STEPS), (weak, 2)):
        for _ in range(steps):
            strong = cv2.dilate(strong, step) & allowed | strong
    return strong


def spans_box(stats: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per component: does it touch two opposite edges of the box (a ruled line, a grid line,
    wood grain, the paper's edge)? A digit touches at most one side."""
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    return ((left == 0) & (right >= width)) | ((top == 0) & (bottom >= height))


def ink_strokes(mask: np.ndarray) -> np.ndarray:
    """The mask less specks and lines running across the box. A speck-sized piece within two
    pixels of a stroke (or of such a piece) is kept: a fine pen's bar along a printed line
    breaks into such pieces (a 2's foot on squared paper), and without them the 2 reads as a 7.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    height, width = mask.shape
    areas = stats[1:, cv2.CC_STAT_AREA]
    across = spans_box(stats[1:], width, height)
    big = (areas >= max(3, int(0.0015 * height * width))) & ~across
    keep = np.concatenate([[False], big])
    small = np.concatenate([[False], ~big & ~across])
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for _ in range(SPECK_CHAIN if small.any() else 0):
        touched = np.zeros(count, bool)
        touched[labels[cv2.dilate(keep[labels].astype(np.uint8), near) > 0]] = True
        added = touched & small & ~keep
        if not added.any():
            break
        keep |= added
    return keep[labels].astype(np.uint8)


#: Two digits written side by side make a group wider than this times its height; one digit,
#: even a wide 0 on a sheet tilted away, stays below it.
MAX_DIGIT_ASPECT = 1.2
#: A group is a digit, not a speck or a stray mark, when it has at least this fraction of the
#: largest group's ink ...
MIN_DIGIT_INK = 1 / 3
#: ... or is at least this fraction of the tallest group's height (a 1 beside an 8 has a
#: quarter of its ink but its full height).
MIN_DIGIT_HEIGHT = 0.6
#: A piece shorter than a digit (a 5's flag, a 6's loop, a 4's crossing stroke) joins the digit
#: beside it across up to this many times the gap two strokes of one digit may leave: a pen
#: lifted between them leaves a wider gap than one line's fades.
PIECE_REACH = 2.0
#: ... into a box up to this many times as wide as it is tall (a 5's flag reaches far right),
#: when the piece has at least this fraction of the digit's ink (a fragment of a squared
#: sheet's grid has less) and does not touch the box's edge (a neighbour's piece cut there).
PIECE_ASPECT = 1.5
PIECE_INK = 0.25


#: More separate strokes than this in the box is a texture (a table's wood grain, a weave),
#: not writing: one digit is a few strokes, three digits in view at most 11 (measured over
#: 6,000 boxes of digits footage); a wood table seen through the webcam box, 20-70.
MAX_STROKES = 16


def stroke_gaps(labels: np.ndarray, stats: np.ndarray, reach: float) -> np.ndarray:
    """(n, n) distances in pixels between the nearest pixels of each two strokes, for those
    within ``reach`` of each other (inf for the rest). Each stroke's distance map is taken in a
    window ``reach`` around it only: the pairs far apart (most of them) cost nothing."""
    count = len(stats)
    gaps = np.full((count, count), np.inf, np.float32)
    margin = int(np.ceil(reach)) + 1
    height, width = labels.shape
    for index, (left, top, w, h, _) in enumerate(stats):
        x0, y0 = max(0, left - margin), max(0, top - margin)
        x1, y1 = min(width, left + w + margin), min(height, top + h + margin)
        window = labels[y0:y1, x0:x1]
        others = np.unique(window)
        others = others[(others > 0) & (others != index + 1)]
        if not len(others):
            continue
        away = cv2.distanceTransform((window != index + 1).astype(np.uint8), cv2.DIST_L2, 3)
        for other in others:
            gaps[index, other - 1] = away[window == other].min()
    return np.minimum(gaps, gaps.T)


def join_strokes(stats: np.ndarray, gaps: np.ndarray, reach: float,
                 shape: tuple[int, int]) -> np.ndarray:
    """Per stroke, the index of its digit: strokes within ``reach`` pixels are joined, nearest
    pairs first. Two groups that are each of a digit's height (:data:`MIN_DIGIT_HEIGHT` of the
    tallest) are not joined into a box wider than :data:`MAX_DIGIT_ASPECT` times its height:
    those are two digits side by side, not one digit's pieces (a piece shorter than that, a 5's
    flag or a 4's open top, always joins). A shorter piece also joins across up to
    :data:`PIECE_REACH` times ``reach`` (``shape``: the box's height and width), on the terms
    of :data:`PIECE_ASPECT` and :data:`PIECE_INK`."""
    digit = np.arange(len(stats))
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    boxes = np.stack([left, top, left + stats[:, cv2.CC_STAT_WIDTH],
                      top + stats[:, cv2.CC_STAT_HEIGHT]], axis=1)
    full_height = MIN_DIGIT_HEIGHT * stats[:, cv2.CC_STAT_HEIGHT].max()

    def box_of(members: np.ndarray) -> tuple[int, int, int, int]:
        (x0, y0), (x1, y1) = boxes[members, :2].min(axis=0), boxes[members, 2:].max(axis=0)
        return x0, y0, x1, y1

    def height_of(members: np.ndarray) -> int:
        _, y0, _, y1 = box_of(members)
        return y1 - y0

    area = stats[:, cv2.CC_STAT_AREA]

    def may_join_as_piece(piece: np.ndarray, whole: np.ndarray, box) -> bool:
        x0, y0, x1, y1 = box_of(piece)
        at_edge = x0 == 0 or y0 == 0 or y1 >= shape[0] or x1 >= shape[1]
        return (not at_edge and area[piece].sum() >= PIECE_INK * area[whole].sum()
                and box[2] - box[0] <= PIECE_ASPECT * (box[3] - box[1]))

    first, second = np.nonzero(np.triu(gaps <= PIECE_REACH * reach, 1))
    for a, b in sorted(zip(first, second), key=lambda pair: gaps[pair]):
        if digit[a] == digit[b]:
            continue
        group_a, group_b = digit == digit[a], digit == digit[b]
        x0, y0, x1, y1 = box_of(group_a | group_b)
        digit_shaped = x1 - x0 <= MAX_DIGIT_ASPECT * (y1 - y0)
        tall_a, tall_b = height_of(group_a) >= full_height, height_of(group_b) >= full_height
        if gaps[a, b] > reach:  # a pen lifted: only a piece joins a digit, into a digit's shape
            if tall_a == tall_b:
                continue
            piece, whole = (group_b, group_a) if tall_a else (group_a, group_b)
            if not may_join_as_piece(piece, whole, (x0, y0, x1, y1)):
                continue
        elif tall_a and tall_b and not digit_shaped:
            continue
        digit[group_b] = digit[a]
    return digit


def digit_groups(strokes: np.ndarray) -> tuple[np.ndarray, int]:
    """(mask of the digit nearest the box centre, number of other digits).

    Strokes are joined into digits across the gaps a writer leaves inside one digit, but never
    into the next digit on the line (:func:`join_strokes`); among the digits (not specks or
    stray marks: :data:`MIN_DIGIT_INK`, :data:`MIN_DIGIT_HEIGHT`), the one whose centre is
    nearest the box centre is read.
    """
    height, width = strokes.shape
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    if count <= 1 or count - 1 > MAX_STROKES:  # nothing, or a texture (:data:`MAX_STROKES`)
        return np.zeros_like(strokes), 0
    stats, centroids = stats[1:], centroids[1:]
    # The gaps inside one digit scale with the writing: a fifth of the tallest stroke's height
    # (a 5's flag, a 4's open top), never more than a tenth of the box; one pixel more, as far
    # as the disc of that diameter that joined strokes before reached.
    tallest = int(stats[:, cv2.CC_STAT_HEIGHT].max())
    reach = float(np.clip(round(0.2 * tallest), 3, max(3, 0.1 * min(height, width)))) + 1
    gaps = stroke_gaps(labels, stats, PIECE_REACH * reach)
    digit = join_strokes(stats, gaps, reach, strokes.shape) if count > 2 else \
        np.zeros(1, int)
    groups, digit = np.unique(digit, return_inverse=True)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    ink = np.bincount(digit, weights=area)
    top = np.full(len(groups), height)
    bottom = np.zeros(len(groups), int)
    np.minimum.at(top, digit, stats[:, cv2.CC_STAT_TOP])
    np.maximum.at(bottom, digit, stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT])
    tall = bottom - top
    real = (ink >= MIN_DIGIT_INK * ink.max()) | (tall >= MIN_DIGIT_HEIGHT * tall.max())
    centre_x = np.bincount(digit, weights=area * centroids[:, 0]) / ink
    centre_y = np.bincount(digit, weights=area * centroids[:, 1]) / ink
    distance = np.hypot(centre_x - width / 2, centre_y - height / 2)
    distance[~real] = np.inf
    lookup = np.zeros(count, np.uint8)
    lookup[1:] = digit == int(np.argmin(distance))
    return lookup[labels], int(real.sum()) - 1


def looks_like_paper(region_bgr: np.ndarray) -> bool:
    """Whether the box's typical colour could be paper (light enough, nearly neutral), judged
    on a 16x16 average of a sparse grid of it (about 64 px on its longer side): blind to the
    ink, and 0.07 ms where averaging the whole 640x480 box costs 0.3."""
    if region_bgr.ndim == 2:
        return float(np.median(region_bgr)) >= MIN_PAPER_LEVEL
    step = max(1, max(region_bgr.shape[:2]) // 64)
    tiny = cv2.resize(region_bgr[::step, ::step], (16, 16),
                      interpolation=cv2.INTER_AREA).astype(np.float32)
    brightest, darkest = tiny.max(axis=2), tiny.min(axis=2)
    saturation = (brightest - darkest) / np.maximum(brightest, 1.0)
    return (float(np.median(brightest)) >= MIN_PAPER_LEVEL
            and float(np.median(saturation)) <= MAX_PAPER_SATURATION)


def read_digit(region_bgr: np.ndarray, size: int = 28) -> InkReading:
    """A box of paper -> the MNIST patch of the digit nearest its centre, uint8 (size, size, 1),
    white ink on black; ``patch`` None when there is no pen ink in it (blank or printed paper).

    A fine pen's digit (:data:`ZOOM_MAX_DEPTH`) in a box at least :data:`ZOOM_FACTOR` times
    :data:`FIND_SIDE` on its shorter side is read twice: found in the work image, then read
    again from a square :data:`ZOOM_SIDE` times its size cut from the box, at finer detail,
    with the paper estimated and the pen thresholded around the digit alone. The other
    digits are counted on the whole box.
    """
    if not looks_like_paper(region_bgr):
        return InkReading(None)
    # The green channel: black, blue and red pens are all dark in it, the light-blue or grey
    # printing of ruled paper is not (in plain gray a red pen is 25 % lighter).
    gray = region_bgr if region_bgr.ndim == 2 else cv2.extractChannel(region_bgr, 1)
    found = find_digit(gray, WORK_SIDE)
    if (found.digit is None or min(gray.shape) // FIND_SIDE < ZOOM_FACTOR
            or fine_depth(found) > ZOOM_MAX_DEPTH):
        return InkReading(found.patch(size), found.others)
    again = find_digit(gray[zoom_window(found, gray.shape)], FIND_SIDE)
    patch = again.patch(size) if again.digit is not None else found.patch(size)
    return InkReading(patch, found.others)


@dataclass
class FoundDigit:
    """Where the ink step found the digit in a work image: its inkness, the digit's pixels
    (None: no digit), the other digits counted, and the shrink factor from the box."""

    inkness: np.ndarray | None
    digit: np.ndarray | None
    others: int
    factor: int

    def patch(self, size: int = 28) -> np.ndarray | None:
        return None if self.digit is None else mnist_patch(self.inkness, self.digit, size)


def find_digit(gray: np.ndarray, side: int) -> FoundDigit:
    """Steps 1-4 of the module on ``gray`` shrunk to a work image of about ``side``."""
    factor = shrink_factor(gray.shape, side)
    inkness = flatten_for_ink(shrink_keeping_ink(gray, side))
    mask = pen_mask(inkness)
    if mask.mean() > MAX_INK_FRACTION:  # "ink" everywhere: no paper in view
        return FoundDigit(inkness, None, 0, factor)
    digit, others = digit_groups(ink_strokes(mask))
    return FoundDigit(inkness, digit if digit.any() else None, others, factor)


def fine_depth(found: FoundDigit) -> float:
    """How deep the found digit's ink is (work pixels from its middle to its edge)."""
    return float(cv2.distanceTransform(found.digit.astype(np.uint8), cv2.DIST_L2, 3).max())


def zoom_window(found: FoundDigit, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The square :data:`ZOOM_SIDE` times the found digit's longer side, centred on it, in
    the box's pixels (clipped to the box)."""
    ys, xs = np.nonzero(found.digit)
    f = found.factor
    top, bottom, left, right = ys.min() * f, (ys.max() + 1) * f, xs.min() * f, (xs.max() + 1) * f
    side = int(ZOOM_SIDE * max(bottom - top, right - left))
    y0 = max(0, (top + bottom) // 2 - side // 2)
    x0 = max(0, (left + right) // 2 - side // 2)
    return slice(y0, min(shape[0], y0 + side)), slice(x0, min(shape[1], x0 + side))


def flatten_for_ink(work: np.ndarray) -> np.ndarray:
    """:func:`flatten_light` with a disc wide enough for the thickest ink in view.

    The default disc (:func:`light_disc`) takes ink wider than itself for paper: the middle of
    a filled loop (a thick pen's 6, a 5's blotted flag) came out grey, and a big digit's thick
    strokes thinned. So the ink above the pen threshold is measured (its depth: the distance
    from its middle to its edge) and, where :data:`DISC_PER_DEPTH` times that is wider than
    the disc, the box is flattened again with that wider disc, its paper estimated at a third
    of the work image's size (the same readings, frame for frame, as at full size, for a
    sixth of the cost). Fine pens and printed lines are far thinner than the disc.

    Measured with the digits default (five draws of 300 of each footage; the first is the
    tests'): the first footage with the webcam default 0.977-0.993 -> 0.987-0.997 (folder
    default unchanged, 0.987-0.997); the harder paper and the empty pages the same, frame
    for frame."""
    disc = light_disc(work.shape)
    inkness = flatten_light(work, disc)
    ink = (inkness > ink_threshold(inkness)).astype(np.uint8)
    depth = float(cv2.distanceTransform(ink, cv2.DIST_L2, 3).max())
    wanted = min(int(DISC_PER_DEPTH * depth) | 1, 2 * min(work.shape) | 1)
    return flatten_light(work, wanted, coarse=3) if wanted > disc else inkness


def mnist_patch(inkness: np.ndarray, digit: np.ndarray, size: int = 28) -> np.ndarray:
    """The digit's own ink, cropped, fitted into 20x20 keeping its aspect and centred by mass
    in ``size`` x ``size``: the recipe MNIST was made with."""
    ys, xs = np.nonzero(digit)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    grown = cv2.dilate(digit, np.ones((3, 3), np.uint8))
    strokes = (inkness * grown)[top:bottom, left:right]
    peak = percentile_of(strokes[grown[top:bottom, left:right] > 0], 95)
    strokes = np.clip(strokes / max(peak, 1e-3), 0.0, 1.0)
    h, w = strokes.shape
    fit = 20.0 / max(h, w)
    new_w, new_h = max(1, int(round(w * fit))), max(1, int(round(h * fit)))
    small = normalise_stroke(cv2.resize(strokes, (new_w, new_h), interpolation=cv2.INTER_AREA))
    patch = centre_by_mass(small, size)
    return np.clip(patch * 255.0, 0, 255).astype(np.uint8)[:, :, None]
