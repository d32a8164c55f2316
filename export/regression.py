"""The float-vs-quantised regression check, with thresholds from ``thresholds.toml``.

One function decides pass/fail so the export report and the tests apply the same rule, and a
failure always names the diagnose command to run next.
"""

from __future__ import annotations

from pathlib import Path

from device.bundle import RESCUE_SUFFIX

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

THRESHOLDS_FILE = Path(__file__).with_name("thresholds.toml")
#: Formats whose numbers are checked: everything that is not plain float32.
QUANTISED = ("tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx-int8", "onnx-dynamic")
#: The key a partly-float model gets (export/fallback.py): ``tflite-int8`` -> ``tflite-int8-mixed``.
MIXED_SUFFIX = RESCUE_SUFFIX  # the device ranks it (device.bundle.PREFERENCE)


def is_checked(key: str) -> bool:
    """Whether ``key`` is a quantised model the thresholds judge (a mixed model is one)."""
    return key.removesuffix(MIXED_SUFFIX) in QUANTISED


def thresholds(task: str, path: Path = THRESHOLDS_FILE) -> dict:
    """The default thresholds with the task's overrides applied."""
    config = tomllib.loads(Path(path).read_text())
    merged = dict(config["default"])
    merged.update(config.get("tasks", {}).get(task, {}))
    return merged


#: Percentage points below which a limit comparison is a floating-point tie, not a breach.
EPSILON = 1e-6


def resolvable(limits: dict, images: int) -> dict:
    """The limits a split of ``images`` can resolve: none finer than ``min_resolvable_images``."""
    floor = limits.get("min_resolvable_images", 0)
    if not floor or not images:
        return limits
    adjusted = dict(limits)
    adjusted["max_accuracy_drop_pt"] = max(limits["max_accuracy_drop_pt"], 100.0 * floor / images)
    adjusted["min_agreement"] = min(limits["min_agreement"], 1.0 - floor / images)
    return adjusted


def violations(comparison: dict, limits: dict) -> list[str]:
    """What in ``comparison`` (from export.compare.compare) breaks ``limits``; empty = pass."""
    found = []
    limits = resolvable(limits, comparison.get("images", 0))
    drop = -comparison["accuracy_delta"] * 100
    # EPSILON: a drop of exactly the floor's images (3 of 450: 0.6667 pt) is within it, though
    # a difference of two float accuracies lands a rounding error above or below.
    if drop > limits["max_accuracy_drop_pt"] + EPSILON:
        found.append(f"accuracy drops {drop:.2f} pt (limit {limits['max_accuracy_drop_pt']:.2f} pt)")
    # Agreement and class recall are judged on the images the float model is decisive about
    # (export.compare: top-two margin >= NEAR_TIE_MARGIN); accuracy on every image.
    agreement = comparison.get("decisive_agreement", comparison["agreement"])
    recall_delta = comparison.get("decisive_recall_delta", comparison["recall_delta"])
    if agreement < limits["min_agreement"] - EPSILON / 100:
        ties = (f"; {comparison['flips']} flips, {comparison['near_tie_flips']} of them near-ties"
                if "flips" in comparison else "")
        where = " on decisive images" if "decisive_agreement" in comparison else ""
        found.append(f"top-1 agreement {agreement:.2%}{where} "
                     f"(limit {limits['min_agreement']:.2%}{ties})")
    for label, delta in recall_delta.items():
        if -delta * 100 > limits["max_class_recall_drop_pt"] + EPSILON:
            found.append(f"class {label!r} recall drops {-delta * 100:.1f} pt "
                         f"(limit {limits['max_class_recall_drop_pt']} pt)")
    return found


def verdict(comparison: dict, limits: dict, layers_kept_float: list[str] | None = None,
            checked: bool = True) -> dict:
    """The per-model verdict every bundle entry carries (docs/contracts.md): written here only.

    ``checked=False`` (a float32 reference) is ok by definition: there is nothing to regress
    against. The device never picks a model whose verdict is not ok."""
    found = violations(comparison, limits) if checked else []
    return {"ok": not found, "violations": found,
            "accuracy_delta": round(float(comparison["accuracy_delta"]), 6),
            "agreement": round(float(comparison["agreement"]), 6),
            "decisive_agreement": round(float(comparison.get("decisive_agreement",
                                                             comparison["agreement"])), 6),
            "layers_kept_float": list(layers_kept_float or [])}


def explain(task: str, model_key: str, found: list[str]) -> str:
    """A failure message that says what broke and the command that shows where."""
    return (f"{task} {model_key} regressed against Keras fp32: " + "; ".join(found) +
            f"\n  find the layers responsible: python -m export diagnose {task} "
            f"--format {model_key}")
