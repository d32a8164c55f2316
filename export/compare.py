"""Comparing a model's predictions with the float reference: the numbers the export report and
the accuracy-regression tests share."""

from __future__ import annotations

import time

import numpy as np


def predict_all(classifier, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities for every input, in batches, through the device backend."""
    parts = [classifier.predict(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def per_class_recall(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    recall = np.full(n_classes, np.nan)
    for c in range(n_classes):
        mask = y == c
        if mask.any():
            recall[c] = float(np.mean(predicted[mask] == c))
    return recall


#: A float prediction whose top two probabilities are closer than this is a near-tie: any
#: rounding, int8 or a different CPU kernel, may turn it over.
NEAR_TIE_MARGIN = 0.05


def top2_margin(probs: np.ndarray) -> np.ndarray:
    """Per image, the gap between the two highest probabilities."""
    top = np.sort(probs, axis=1)
    return top[:, -1] - top[:, -2] if probs.shape[1] > 1 else np.ones(len(probs))


def recall_change(y: np.ndarray, predicted: np.ndarray, expected: np.ndarray,
                  labels: list[str]) -> dict:
    """Per class: recall of ``predicted`` minus recall of the reference's ``expected``."""
    recall = per_class_recall(y, predicted, len(labels))
    reference_recall = per_class_recall(y, expected, len(labels))
    return {label: float(recall[i] - reference_recall[i])
            for i, label in enumerate(labels) if not np.isnan(recall[i])}


def compare(probs: np.ndarray, reference: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, its change vs the reference, top-1 agreement and per-class recall changes.

    ``flips`` counts the images whose top-1 class changed and ``near_tie_flips`` those of them
    where the reference itself was a near-tie: flips that are all near-ties mean borderline
    images, not a layer that quantisation broke. ``decisive_*`` repeat agreement and recall
    change over the images where the reference is not a near-tie: what the regression check
    judges, so that a coin-toss image turning over is not called a regression."""
    predicted, expected = probs.argmax(1), reference.argmax(1)
    flipped = predicted != expected
    decisive = top2_margin(reference) >= NEAR_TIE_MARGIN
    accuracy = float(np.mean(predicted == y))
    return {
        "accuracy": accuracy,
        "accuracy_delta": accuracy - float(np.mean(expected == y)),
        "agreement": float(np.mean(predicted == expected)),
        "max_prob_diff": float(np.max(np.abs(probs - reference))) if len(probs) else 0.0,
        "recall_delta": recall_change(y, predicted, expected, labels),
        "images": int(len(y)),
        "flips": int(flipped.sum()),
        "near_tie_flips": int(np.sum(flipped & ~decisive)),
        # The same two checks over the images where the reference is decisive (not a near-tie).
        "decisive_agreement": float(np.mean(~flipped[decisive])) if decisive.any() else 1.0,
        "decisive_recall_delta": recall_change(y[decisive], predicted[decisive],
                                               expected[decisive], labels),
    }


def median_latency_ms(predict, sample: np.ndarray, runs: int = 100, warmup: int = 5) -> dict:
    """Median and p95 single-image latency of ``predict(sample)`` in milliseconds."""
    for _ in range(warmup):
        predict(sample)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        predict(sample)
        times.append((time.perf_counter() - started) * 1000.0)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}
