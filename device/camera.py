"""Camera-domain preprocessing: a live frame -> the model input the bundle was trained on.

A camera sees far more than a dataset image: the whole scene, uneven light, sensor noise, JPEG
artefacts. This module cuts out the region of interest (ROI) and, per the bundle's ``camera``
mode, turns it into what training saw:

* ``crop`` (hand signs, custom tasks): the ROI goes through the same ``fit_image`` as the
  training images (centre square, resize, colour).
* ``locate`` (fruits): the subject is found against its background inside the ROI and a square
  around it goes through ``fit_image`` (device/locate.py); nothing found is no subject.
* ``digit_ink`` (digits): a dark digit on light paper becomes an MNIST-like patch (light
  flattened, ink thresholded and inverted, cropped to the ink, fitted into 20x20 keeping aspect,
  centred by mass in 28x28), the recipe MNIST itself was built with.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.errors import UserError
from device.preprocess import fit_image, to_input
from device.result import BLANK_FRAME, NO_INK


@dataclass(frozen=True)
class Roi:
    """A region of interest in pixels: ``x``, ``y`` of the top-left corner, ``width``, ``height``."""

    x: int
    y: int
    width: int
    height: int

    def cut(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y:self.y + self.height, self.x:self.x + self.width]


def parse_roi(text: str) -> str | float | tuple[int, int, int, int]:
    """``--roi``: ``full``, a centre-box fraction (``0.6``) or pixels ``x,y,w,h``."""
    text = str(text).strip().lower()
    if text == "full":
        return "full"
    try:
        if "," in text:
            values = tuple(int(v) for v in text.split(","))
            if len(values) != 4 or values[2] <= 0 or values[3] <= 0 or min(values[:2]) < 0:
                raise ValueError
            return values
        fraction = float(text)
        if not 0.05 <= fraction <= 1.0:
            raise ValueError
        return fraction
    except ValueError:
        raise UserError(f"--roi {text!r} is not valid: use 'full', a centre-box fraction "
                        "between 0.05 and 1 (e.g. 0.6), or pixels x,y,w,h") from None


def roi_for(frame_shape: tuple[int, ...], setting, multiple_of: int = 1) -> Roi:
    """The ROI in pixels for a frame of ``frame_shape``.

    A pixel ROI must lie inside the frame: one that does not is refused on the first frame
    (a silently clamped box, possibly 1 px wide, would classify something the user never chose).

    A fractional (centred square) ROI is snapped to the nearest multiple of ``multiple_of``
    (the model's input side): shrinking by a whole factor makes OpenCV's area resize a plain
    block average, which is several times faster than a fractional one and is the same kind of
    averaging the training images got. The box moves by at most half the model's side.
    """
    height, width = frame_shape[:2]
    if setting == "full":
        return Roi(0, 0, width, height)
    if isinstance(setting, tuple):
        x, y, w, h = setting
        if x + w > width or y + h > height:
            raise UserError(f"--roi {x},{y},{w},{h} does not fit the {width}x{height} frame the "
                            f"source gives: keep x+w <= {width} and y+h <= {height}, or use a "
                            "centre-box fraction such as 0.6")
        return Roi(x, y, w, h)
    shortest = min(height, width)
    side = max(1, int(round(shortest * float(setting))))
    if multiple_of > 1 and shortest >= multiple_of:
        side = min(max(1, round(side / multiple_of)) * multiple_of,
                   shortest // multiple_of * multiple_of)
    return Roi((width - side) // 2, (height - side) // 2, side, side)


# --- digits: dark ink on light paper -> MNIST --------------------------------------------------

def light_disc(shape) -> int:
    """The closing disc :func:`flatten_light` uses by default: a sixth of the longer side, but
    no more than twice the shorter (a sliver of an image, 1x20000, would otherwise get a disc
    thousands of pixels wide: minutes of work per frame); odd."""
    return max(3, min(max(shape) // 6, 2 * min(shape)) | 1)


def flatten_light(gray: np.ndarray, kernel: int | None = None, coarse: int = 1) -> np.ndarray:
    """Divide out the paper's brightness (a blurred, ink-free background estimate), so a lighting
    gradient or a shadow does not look like ink. Returns 'inkness' in [0, 1]: 0 = paper.
    ``kernel``: the closing disc's diameter (default :func:`light_disc`); ink wider than it
    is taken for paper. ``coarse``: estimate the paper on an image that many times smaller (a
    wide disc's closing and blur cost several times the default's at full size; the paper's
    level is smooth at that scale anyway); the inkness keeps the full resolution."""
    kernel = kernel or light_disc(gray.shape)
    height, width = gray.shape
    lit = gray
    if coarse > 1:  # shrunk keeping the light: ink narrower than ``coarse`` is gone already
        lit = cv2.resize(cv2.dilate(gray, np.ones((coarse, coarse), np.uint8)),
                         (max(1, width // coarse), max(1, height // coarse)),
                         interpolation=cv2.INTER_AREA)
        kernel = max(3, (kernel // coarse) | 1)
    # Closing (max then min filter) with a disc wider than any stroke keeps only the paper,
    # shadow edges included; a Gaussian smooths the estimate.
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    # The image's edge is padded with its own border pixels first: a closing that just ignores
    # what lies outside (OpenCV's default, and it ignores a borderType) keeps paper that darkens
    # towards the edge (a shadow in a corner) at the brighter level a disc-width inside, and
    # that band then reads as a pen stroke along the edge (blank pages called a 0 or a 1).
    pad = kernel // 2
    padded = cv2.copyMakeBorder(lit, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    background = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disc)[pad:-pad, pad:-pad]
    # The estimate is smooth by construction, so it is blurred at half resolution and scaled
    # back: a quarter of the pixels and half the taps, the same to within a gray level or two.
    small_h, small_w = background.shape
    half = cv2.resize(background, (max(1, small_w // 2), max(1, small_h // 2)),
                      interpolation=cv2.INTER_AREA)
    half = cv2.GaussianBlur(half, (0, 0), kernel / 4)
    blurred = cv2.resize(half, (width, height), interpolation=cv2.INTER_LINEAR)
    if coarse > 1:
        background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    # The blur spills the lit side of a shadow edge into the shade, where the paper would then
    # look darker than its estimate: a band of false ink in which ruled lines pass for pen
    # strokes. The closing is never below the paper, so the lower of the two is the estimate.
    background = np.minimum(blurred, background).astype(np.float32)
    ratio = gray.astype(np.float32) / np.maximum(background, 1.0)
    return np.clip(1.0 - ratio, 0.0, 1.0)


def centre_by_mass(patch: np.ndarray, size: int = 28) -> np.ndarray:
    """Place a (<=20x20) float patch in a ``size`` frame so its centre of mass is in the middle."""
    canvas = np.zeros((size, size), np.float32)
    h, w = patch.shape
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top:top + h, left:left + w] = patch
    moments = cv2.moments(canvas)
    if moments["m00"] > 0:
        dx = size / 2 - moments["m10"] / moments["m00"]
        dy = size / 2 - moments["m01"] / moments["m00"]
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        canvas = cv2.warpAffine(canvas, shift, (size, size), flags=cv2.INTER_LINEAR,
                                borderValue=0)
    return canvas


#: Paper under any usable light is brighter than this (gray level). Below it the light-
#: flattening step would divide by ~0 and call every pixel ink.
MIN_PAPER_LEVEL = 40.0


#: MNIST strokes are about 2-3 px wide once the digit fits 20x20; a fine pen gives thinner ones.
MIN_STROKE_PX = 2.2


def stroke_width(patch: np.ndarray) -> float:
    """Mean stroke width of a fitted digit: twice its inked area over its outline length."""
    mask = (patch > 0.3).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(mask.sum()) / perimeter if perimeter else 0.0


def normalise_stroke(patch: np.ndarray) -> np.ndarray:
    """Thicken strokes thinner than MNIST's (a fine pen), so they look like what training saw."""
    if 0.0 < stroke_width(patch) < MIN_STROKE_PX:
        patch = cv2.dilate(patch, np.ones((2, 2), np.uint8))
    return patch


def mnistify(roi_bgr: np.ndarray, size: int = 28) -> np.ndarray | None:
    """A dark digit on light paper -> uint8 (size, size, 1), white ink on black like MNIST;
    None when the box holds no digit. The digits camera step itself (device/ink.py, which also
    ignores printed paper lines and counts other digits); kept here as the one-call form."""
    from device.ink import read_digit

    return read_digit(roi_bgr, size).patch


# --- all tasks ---------------------------------------------------------------------------------

#: A region whose brightness varies less than this (gray levels, std) shows no subject: a lens
#: cap, a black first frame, an over-exposed white one, a blank wall. Camera noise alone is
#: 1-3 levels; any digit, fruit or hand in the box gives tens.
BLANK_STD = 4.0


def blank_reason(region: np.ndarray, mode: str) -> str | None:
    """``blank_frame`` when ``region`` cannot hold a subject (featureless, or for ink on paper:
    unlit), else None. Measured on a sparse grid of pixels: it runs on every frame."""
    step = max(1, max(region.shape[:2]) // 64)
    sample = region[::step, ::step]
    gray = sample if sample.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(sample),
                                                        cv2.COLOR_BGR2GRAY)
    mean, std = cv2.meanStdDev(gray)
    if mode == "digit_ink":
        # Unlit (a black frame, a lens cap) is blank; lit but featureless is paper without ink,
        # which the digit step itself reports as no_ink.
        return BLANK_FRAME if float(mean[0, 0]) < MIN_PAPER_LEVEL else None
    return BLANK_FRAME if float(std[0, 0]) < BLANK_STD else None


class FramePreprocessor:
    """Frame -> (model input batch or None, ROI), following the bundle's preprocessing spec.

    None means no subject; :attr:`reason` then says why (``blank_frame``: black, white or
    featureless; ``no_ink``: paper without a digit), in the result vocabulary.
    """

    def __init__(self, spec: dict, roi_setting):
        self.spec = spec
        self.roi_setting = roi_setting
        self.reason: str | None = None
        self.others = 0  # digit_ink: other digits seen in the box, not read
        self.mode = spec.get("camera", "crop")
        if self.mode not in ("crop", "digit_ink", "locate"):
            raise UserError(f"bundle preprocessing asks for camera mode {self.mode!r}, which this "
                            "runner does not know: update the device package")

    def pixels(self, frame: np.ndarray) -> tuple[np.ndarray | None, Roi]:
        """The uint8 model-size picture for ``frame`` (None when there is nothing to classify)."""
        from device.ink import read_digit  # device/ink.py builds on this module's helpers

        snap = self.spec["size"][0] if self.mode == "crop" else 1
        roi = roi_for(frame.shape, self.roi_setting, snap)
        region = roi.cut(frame)
        self.others = 0
        self.reason = blank_reason(region, self.mode)
        if self.reason is not None:
            return None, roi
        if self.mode == "digit_ink":
            reading = read_digit(region, self.spec["size"][0])
            patch, self.others = reading.patch, reading.others
            self.reason = NO_INK if patch is None else None
            if patch is not None and self.spec["channels"] == 3:
                patch = cv2.cvtColor(patch, cv2.COLOR_GRAY2RGB)
            return patch, roi
        if self.mode == "locate":
            return self.located(frame, roi)
        return fit_image(region, self.spec), roi

    def located(self, frame: np.ndarray, bounds: Roi) -> tuple[np.ndarray | None, Roi]:
        """``locate`` mode: the square around the subject found inside ``bounds``
        (device/locate.py); None and the bounds when nothing stands out."""
        from device.locate import locate

        found = locate(frame, (bounds.x, bounds.y, bounds.width, bounds.height))
        self.others = found.others
        if found.box is None:
            return None, bounds
        square = Roi(found.box[0], found.box[1], found.box[2], found.box[2])
        return fit_image(square.cut(frame), self.spec), square

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray | None, Roi]:
        pixels, roi = self.pixels(frame)
        return (None if pixels is None else to_input(pixels, self.spec)[None]), roi
