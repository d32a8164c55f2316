"""Temporal smoothing and a confidence gate, so a live label says "unsure" rather than flicker.

An exponential moving average of the class probabilities over the last frames (``alpha`` = the
weight of the newest frame) gives a stable label; the gate reports ``unsure`` while the smoothed
top probability is below ``threshold``.
"""

from __future__ import annotations

import numpy as np

UNSURE = "unsure"


class ExponentialVote:
    def __init__(self, labels: list[str], alpha: float = 0.4, threshold: float = 0.6):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.labels = labels
        self.alpha = alpha
        self.threshold = threshold
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def update(self, probs: np.ndarray | None) -> tuple[str, float]:
        """Fold in one frame's probabilities (None = nothing seen: decay towards unsure)."""
        if probs is None:
            if self.state is not None:
                self.state = self.state * (1.0 - self.alpha)
        elif self.state is None:
            self.state = probs.astype(np.float64).copy()
        else:
            self.state = self.alpha * probs + (1.0 - self.alpha) * self.state
        if self.state is None:
            return UNSURE, 0.0
        best = int(np.argmax(self.state))
        score = float(self.state[best])
        return (self.labels[best] if score >= self.threshold else UNSURE), score

