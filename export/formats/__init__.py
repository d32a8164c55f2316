"""The export format table: each module in this package declares one ``FORMAT``.

Adding a format is adding one file: the exporter, the CLI choices, the report and the device's
model choice all read :data:`FORMATS`. (The table follows Ultralytics' exporter: name, file,
precision, and whether it needs calibration data.)
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ExportFormat:
    key: str            # CLI / --model name, e.g. "tflite-int8"
    format: str         # "tflite" or "onnx": which device backend opens it
    precision: str      # "fp32", "fp16", "dynamic" or "int8"
    filename: str       # file name inside the bundle
    needs_calibration: bool
    order: int          # position in the table and the report
    convert: Callable   # convert(context, destination: Path) -> None
    optional: bool = False  # not exported unless asked for


def _discover() -> dict[str, ExportFormat]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        declared = getattr(importlib.import_module(f"{__name__}.{module.name}"), "FORMAT", None)
        if declared is not None:
            found.append(declared)
    return {f.key: f for f in sorted(found, key=lambda f: f.order)}


FORMATS: dict[str, ExportFormat] = _discover()
DEFAULT_FORMATS = [key for key, f in FORMATS.items() if not f.optional]
