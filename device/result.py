"""The result vocabulary: one record per frame, the same for JSON lines, ``serve`` and the API.

A label is a class, :data:`NOTHING` (no subject in view: a blank or black frame, no ink, no hand,
the user's ``none`` class) or :data:`UNSURE` (a subject, but no class the model is confident
about; ``guess`` then carries its best class). ``reason`` says which case it is, so a program
can tell "lens covered" from "hand not recognised". The schema is documented in
docs/contracts.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOTHING = "nothing"
UNSURE = "unsure"
#: A user's class of this name means "nothing in view": reported as NOTHING, never as a class.
NONE_CLASS = "none"

# Reasons
CONFIDENT = "confident"
LOW_CONFIDENCE = "low_confidence"
NO_INK = "no_ink"
NO_HAND = "no_hand"
BLANK_FRAME = "blank_frame"
NONE_CLASS_REASON = "none_class"
NO_SUBJECT = "no_subject"

TOP_K = 3


@dataclass
class Result:
    """One frame's outcome. ``label`` is what the user sees; ``raw_*`` is this frame alone."""

    label: str
    reason: str
    score: float = 0.0
    guess: str | None = None
    top: list[tuple[str, float]] = field(default_factory=list)
    raw_label: str | None = None
    raw_score: float = 0.0
    box: tuple[int, int, int, int] | None = None
    preprocess_ms: float = 0.0
    latency_ms: float = 0.0
    hand: dict | None = None
    others: int | None = None

    @property
    def is_class(self) -> bool:
        return self.label not in (NOTHING, UNSURE)

    def to_json(self) -> dict:
        record = {"label": self.label, "reason": self.reason, "score": round(self.score, 4),
                  "guess": self.guess,
                  "top": [{"label": name, "score": round(p, 4)} for name, p in self.top],
                  "raw_label": self.raw_label if self.raw_label is not None else self.label,
                  "raw_score": round(self.raw_score, 4),
                  "box": list(self.box) if self.box is not None else None,
                  "preprocess_ms": round(self.preprocess_ms, 3),
                  "latency_ms": round(self.latency_ms, 3)}
        if self.hand is not None:
            record["hand"] = self.hand
        if self.others is not None:
            record["others"] = self.others
        return record


def top_k(probs: np.ndarray, labels: list[str], k: int = TOP_K) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, best first."""
    order = np.argsort(probs)[::-1][:k]
    return [(labels[i], float(probs[i])) for i in order]


def decide(probs: np.ndarray | None, labels: list[str], threshold: float,
           no_subject_reason: str = NO_SUBJECT) -> tuple[str, str, float, str | None]:
    """Probabilities -> (label, reason, score, guess) in the result vocabulary.

    ``probs`` None means no subject reached the model (``no_subject_reason`` says why). A
    ``none`` class winning means nothing is in view. Below ``threshold`` the answer is
    ``unsure`` with the best class as its guess.
    """
    if probs is None:
        return NOTHING, no_subject_reason, 0.0, None
    best = int(np.argmax(probs))
    name, score = labels[best], float(probs[best])
    if name == NONE_CLASS:
        return NOTHING, NONE_CLASS_REASON, score, None
    if score < threshold:
        return UNSURE, LOW_CONFIDENCE, score, name
    return name, CONFIDENT, score, None
