"""What a bundle's ``pipeline.thresholds`` may hold: the type of each default and a range.

Validation only: it refuses a bundle, never changes an answer, so the landmark cache's
fingerprint (train/landmarks.py) leaves this module out.
"""

from __future__ import annotations

from device.hands.tracker import DEFAULT_THRESHOLDS

#: Ranges of the thresholds a bundle may set (lists: per element). Scores and fractions of a
#: region live in [0, 1]; lists are short (each element is a model run per frame or photo).
THRESHOLD_RANGES = {
    "min_palm_score": (0.0, 1.0), "nms_iou": (0.0, 1.0), "min_presence": (0.0, 1.0),
    "max_palm_tries": (1, 10), "fallback_pads": (0.5, 4.0), "fallback_angles": (-360.0, 360.0),
    "refine": (0, 5), "scan_sides": (0.05, 1.0), "min_scan_presence": (0.0, 1.0),
    "scan_angles": (-360.0, 360.0), "palm_tiles": (0.05, 1.0), "hand_view_below": (0.0, 1.0),
    "hand_view_scale": (0.5, 4.0), "scan_refine": (0, 16),
}
MAX_THRESHOLD_LIST = 16


def threshold_problem(name: str, value) -> str:
    """What is wrong with a bundle's ``thresholds[name] = value`` ("" when nothing): the type
    of its default and the range above. A bundle is data from elsewhere: a string where a
    number belongs would otherwise crash the runner on its first hand."""
    default = DEFAULT_THRESHOLDS[name]
    low, high = THRESHOLD_RANGES.get(name, (None, None))

    def number_problem(item) -> str:
        whole = isinstance(default, int)  # max_palm_tries, refine (bools are handled below)
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item != item:
            return "must be a number"
        if whole and not isinstance(item, int):
            return "must be a whole number"
        if low is not None and not low <= item <= high:
            return f"must be from {low} to {high}"
        return ""

    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "must be true or false"
    if isinstance(default, list):
        if not isinstance(value, list) or len(value) > MAX_THRESHOLD_LIST:
            return f"must be a list of at most {MAX_THRESHOLD_LIST} numbers"
        return next((f"every element {problem}" for problem in map(number_problem, value)
                     if problem), "")
    return number_problem(value)
