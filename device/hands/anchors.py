"""SSD anchors for the palm detector, as MediaPipe's ``SsdAnchorsCalculator`` builds them.

The options are those of ``palm_detection_cpu.pbtxt`` (num_layers 4, min_scale 0.1484375,
max_scale 0.75, 192x192 input, anchor offset 0.5, strides 8/16/16/16, aspect ratio 1.0,
``fixed_anchor_size: true``). Consecutive layers with the same stride share one grid, so the
three stride-16 layers give 6 anchors per cell of a 12x12 grid and stride 8 gives 2 per cell of
24x24: 24*24*2 + 12*12*6 = 2016 anchors, in the order the model's 2016 outputs use. With a fixed
anchor size every anchor is 1x1 (normalised), so only the centres matter.
"""

from __future__ import annotations

import numpy as np

PALM_ANCHOR_OPTIONS = {
    "input_size": 192,
    "strides": (8, 16, 16, 16),
    "anchor_offset": 0.5,
    "aspect_ratios": (1.0,),
    "interpolated_scale_aspect_ratio": 1.0,
}


def anchors_per_location(options: dict, layers: int) -> int:
    """Anchors each grid cell gets from ``layers`` merged layers: one per aspect ratio, plus
    one interpolated-scale anchor when that ratio is set (MediaPipe's default 1.0)."""
    per_layer = len(options["aspect_ratios"]) + (options["interpolated_scale_aspect_ratio"] > 0)
    return per_layer * layers


def ssd_anchors(options: dict | None = None) -> np.ndarray:
    """(N, 2) float32 anchor centres (x, y) in [0, 1], in the model's output order."""
    options = options or PALM_ANCHOR_OPTIONS
    strides = list(options["strides"])
    size = options["input_size"]
    offset = options["anchor_offset"]
    centres = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        grid = int(np.ceil(size / strides[layer]))
        repeat = anchors_per_location(options, last - layer)
        ys, xs = np.mgrid[0:grid, 0:grid]
        cell = np.stack([(xs.ravel() + offset) / grid, (ys.ravel() + offset) / grid], axis=1)
        centres.append(np.repeat(cell, repeat, axis=0))
        layer = last
    return np.concatenate(centres).astype(np.float32)
