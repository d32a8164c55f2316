"""The one frame pipeline: a BGR frame -> one :class:`device.result.Result`.

The runner, ``serve``, ``collect``, ``check`` and the Python API all call this, so a frame is
turned into an answer the same way everywhere. It is built once (bundle opened and verified,
models loaded with their thread count); per frame it runs the bundle's *subject stage* (which
finds what to classify), the classifier, and the result vocabulary's decision, with optional
smoothing over frames.

Two subject stages, chosen by the bundle's ``pipeline.kind`` (docs/contracts.md):

* ``image``: the region of interest through the camera step (``crop`` or ``digit_ink``,
  device/camera.py). No ink, or a blank frame, is ``nothing``.
* ``hands``: palm detection and hand landmarks (device/hands/), then the classifier reads the
  landmark features. No hand is ``nothing`` (reason ``no_hand``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from device.backends import load_classifier
from device.bundle import Bundle, open_bundle
from device.camera import FramePreprocessor, Roi, parse_roi, roi_for
from device.hands.features import fuse
from device.result import (
    CONFIDENT,
    LOW_CONFIDENCE,
    NO_HAND,
    NO_INK,
    NO_SUBJECT,
    NONE_CLASS,
    NOTHING,
    UNSURE,
    Result,
    decide,
    top_k,
)
from device.smoothing import ExponentialVote


@dataclass
class Subject:
    """What a subject stage found in a frame: the model input, or why there is none."""

    batch: np.ndarray | None          # (1, ...) float32 model input; None = nothing to classify
    box: tuple[int, int, int, int] | None
    reason: str = NO_SUBJECT          # why ``batch`` is None
    inset: np.ndarray | None = None   # the picture the model saw, for the overlay
    extras: dict = field(default_factory=dict)  # goes into the Result (hand, others)
    # Several views of one subject (rows of ``batch``; a still photo's hand): the classifier
    # reads each and their answers are averaged with these weights (features.fuse).
    weights: np.ndarray | None = None


def roi_setting(roi, still: bool, camera: str | None = None) -> str:
    """The region of interest ``auto`` stands for: the whole picture for stills (photos are
    already framed) and for the ``locate`` camera step (it finds the subject anywhere), the 0.6
    centre box for the other steps on cameras and videos. ``collect`` uses it too, so captures
    are framed exactly as the runner will frame them."""
    if roi not in (None, "auto"):
        return roi
    return "full" if still or camera == "locate" else "0.6"


class ImageStage:
    """The region of interest through the bundle's camera step (device/camera.py)."""

    def __init__(self, bundle: Bundle, roi, still: bool):
        setting = roi_setting(roi, still, bundle.preprocessing.get("camera"))
        self.preprocess = FramePreprocessor(bundle.preprocessing, parse_roi(setting))
        self.no_subject = NO_INK if bundle.preprocessing.get("camera") == "digit_ink" \
            else NO_SUBJECT

    def __call__(self, frame: np.ndarray) -> Subject:
        pixels, roi = self.preprocess.pixels(frame)
        box = (roi.x, roi.y, roi.width, roi.height)
        others = self.preprocess.others
        extras = {"others": others} if others else {}
        if pixels is None:  # the camera step says why: a blank/black frame, or no ink
            return Subject(None, box, self.preprocess.reason or self.no_subject, extras=extras)
        from device.preprocess import to_input

        return Subject(to_input(pixels, self.preprocess.spec)[None], box, inset=pixels,
                       extras=extras)


class HandStage:
    """Palm detection + hand landmarks, then the landmark features the classifier reads."""

    def __init__(self, bundle: Bundle, model_key: str, threads: int, roi, still: bool):
        from device.hands.features import view_features
        from device.hands.tracker import HandTracker

        pipeline = bundle.metadata["pipeline"]
        palm_key, palm_path = bundle.stage_variant("palm", model_key)
        landmark_key, landmark_path = bundle.stage_variant("landmark", model_key)
        self.variants = {"palm": palm_key, "landmark": landmark_key}
        # By default hands are searched in the whole frame; --roi bounds the search.
        self.roi_setting = None if roi in (None, "auto", "full") else parse_roi(roi)
        self.tracker = HandTracker(palm_path, landmark_path,
                                   model_format=landmark_key.split("-")[0],
                                   palm_format=palm_key.split("-")[0], threads=threads,
                                   roi=None, still=still, thresholds=pipeline.get("thresholds"))
        self.views = view_features
        self.frame_shape: tuple[int, ...] | None = None

    def _bounds(self, frame: np.ndarray) -> Roi | None:
        """The search bounds in pixels, worked out again only when the frame size changes."""
        if self.roi_setting is not None and frame.shape != self.frame_shape:
            self.frame_shape = frame.shape
            self.tracker.roi = roi_for(frame.shape, self.roi_setting)
        return self.tracker.roi

    def __call__(self, frame: np.ndarray) -> Subject:
        bounds = self._bounds(frame)
        hand, info = self.tracker.process(frame)
        others = max(0, int(info.get("hands_found", 0)) - 1)
        if hand is None:
            box = None if bounds is None else (bounds.x, bounds.y, bounds.width, bounds.height)
            return Subject(None, box, NO_HAND, extras={"others": others} if others else {})
        features, weights = self.views(hand)
        record = {"landmarks": np.round(hand.landmarks, 1).tolist(),
                  "presence": round(float(hand.presence), 4),
                  "handedness": hand.handedness, "detected": bool(hand.detected),
                  "rect": [round(float(v), 3) for v in hand.rect]}
        extras = {"hand": record}
        if others:
            extras["others"] = others
        box = tuple(int(round(v)) for v in hand.box)
        return Subject(features, box, inset=hand.crop, extras=extras,
                       weights=weights if len(weights) > 1 else None)


#: Below this confidence a subject's label is ``unsure``, unless the bundle says otherwise.
DEFAULT_MIN_CONFIDENCE = 0.6

#: The ``pipeline.min_confidence`` of a model that averages members (``--arch convnet-pair``):
#: where two members name different classes their mean is ~0.5 for each, whichever is right, so
#: 0.6 calls half-agreed answers ``unsure`` that a single model would have named. Digits footage
#: (tests/measure_scenes.py, two trainings, 2,400 frames with a digit): 0.5 instead of 0.6 named
#: 26 of the 31 ``unsure`` frames, 14 of them right, and the pair then matches the single 468 k
#: model (2,354 right against its 2 x 1,176).
AVERAGED_MIN_CONFIDENCE = 0.5


def min_confidence(bundle: Bundle) -> float:
    """The bundle's own ``pipeline.min_confidence`` (docs/contracts.md), else the default.

    Averaged image models set :data:`AVERAGED_MIN_CONFIDENCE`, and hand bundles 0.5 too: a
    hand's answer for a still photo is the mean over several views, which spreads the
    probability of a sign the views agree on less than one view would (0.5 = more than half of
    the evidence; on the test photos 11 of the 15 answers between 0.4 and 0.6 named the right
    sign)."""
    value = bundle.pipeline.get("min_confidence")
    return DEFAULT_MIN_CONFIDENCE if value is None else float(value)


class FramePipeline:
    """Built once per bundle; ``pipeline(frame)`` -> :class:`Result`.

    ``roi``: ``auto`` (the source's default), ``full``, a centre-box fraction or ``x,y,w,h``.
    ``still``: frames are unrelated photos (an image folder): no tracking, whole-image ROI.
    ``smoothing`` averages class evidence over frames, ``nothing`` included as evidence of its
    own, so a subject leaving the view switches the label within a few frames.
    """

    def __init__(self, bundle_dir, model: str | None = None, threads: int = 2, roi="auto",
                 smoothing: bool = False, alpha: float = 0.4, threshold: float | None = None,
                 still: bool = False):
        probe = open_bundle(bundle_dir, verify=False)
        self.model_key = probe.choose(model)
        self.bundle = open_bundle(bundle_dir, keys=[self.model_key])
        entry = self.bundle.models[self.model_key]
        self.classifier = load_classifier(self.bundle.model_path(self.model_key),
                                          entry["format"], threads)
        self.labels = list(self.bundle.labels)
        self.threshold = min_confidence(self.bundle) if threshold is None else threshold
        self.kind = self.bundle.kind
        if self.kind == "hands":
            self.stage = HandStage(self.bundle, self.model_key, threads, roi, still)
        else:
            self.stage = ImageStage(self.bundle, roi, still)
        self.vote = ExponentialVote(self.labels + [NOTHING], alpha, self.threshold) \
            if smoothing else None
        self.inset: np.ndarray | None = None
        self._nothing_reason = NO_SUBJECT

    def __call__(self, frame: np.ndarray) -> Result:
        started = time.perf_counter()
        subject = self.stage(frame)
        inference_started = time.perf_counter()
        probs = self._classify(subject)
        finished = time.perf_counter()
        self.inset = subject.inset
        label, reason, score, guess = decide(probs, self.labels, self.threshold, subject.reason)
        result = Result(label, reason, score, guess,
                        top=top_k(probs, self.labels) if probs is not None else [],
                        raw_label=label, raw_score=score, box=subject.box,
                        preprocess_ms=(inference_started - started) * 1000,
                        latency_ms=(finished - inference_started) * 1000,
                        hand=subject.extras.get("hand"), others=subject.extras.get("others"))
        if self.vote is not None:
            self._smooth(result, probs, subject.reason)
        return result

    def _classify(self, subject: Subject) -> np.ndarray | None:
        """The class probabilities of the subject: one model run, or one per view, fused."""
        if subject.batch is None:
            return None
        if subject.weights is None:
            return self.classifier.predict(subject.batch[:1])[0]
        views = [self.classifier.predict(row[None])[0] for row in subject.batch]
        return fuse(np.stack(views), subject.weights).astype(np.float32)

    def _smooth(self, result: Result, probs: np.ndarray | None, nothing_reason: str) -> None:
        """Replace ``label``/``score``/``reason``/``guess`` with the smoothed decision.

        The moving average runs over the classes plus ``nothing``: a frame with no subject (or
        the user's ``none`` class) adds evidence for ``nothing``, so the label switches to it
        within a few frames of the subject leaving (alpha 0.4: two frames) instead of holding a
        stale class. ``raw_*`` keep this frame's own answer.
        """
        evidence = np.zeros(len(self.labels) + 1, np.float64)
        if result.raw_label == NOTHING:
            evidence[-1] = 1.0
            self._nothing_reason = result.reason
        else:
            evidence[:-1] = probs
        self.vote.update(evidence)
        state = self.vote.state
        best = int(np.argmax(state))
        score = float(state[best])
        if best == len(self.labels) or self.labels[best] == NONE_CLASS:
            result.label, result.score, result.guess = NOTHING, 0.0, None
            result.reason = self._nothing_reason
        elif score < self.threshold:
            result.label, result.reason, result.score = UNSURE, LOW_CONFIDENCE, score
            result.guess = self.labels[best]
        else:
            result.label, result.reason, result.score, result.guess = \
                self.labels[best], CONFIDENT, score, None
