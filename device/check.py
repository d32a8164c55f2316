"""``python -m device check``: the gate every deploy relies on.

It proves the bundle runs the way the runner will run it, model by model:

* every checksum (``open_bundle``), every model loads with the device's runtime;
* the model's declared input is what the preprocessing produces, and it has one output per
  label (a shorter label list would crash the runner on its first frame);
* the bundle's own samples classify as well as export measured (another CPU or runtime may
  round a borderline image differently; a broken model misses by far more);
* a quantised model agrees with the bundle's float model on those samples: a model compared
  only with its own export-time score matches itself however bad it is;
* the export's verdict (``models[i].verdict``) is reported: a failing model is never the
  runner's default (``Bundle.choose``), and ``deploy`` refuses a bundle whose default fails;
* full camera-like frames, and a black and a blank frame, go through the runner's own frame
  code: any exception there fails the check.

Exit status 0 only if all of that holds. On failure the last line on stderr is one ``error:``
line naming the model and the reason: ``deploy`` shows exactly that line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from device.backends import load_classifier
from device.bundle import (
    PREFERENCE,
    RESCUE_SUFFIX,
    open_bundle,
    sha256_of,
    verdict_state,
    verdict_summary,
)
from device.errors import UserError
from device.preprocess import to_input

#: Allowed gap between on-device and export-time sample accuracy.
TOLERANCE = 0.05
#: A quantised model may differ from the float model on at most this many of the samples the
#: float model is decisive about (its top two classes at least NEAR_TIE apart), or this fraction
#: of them, whichever is more. Export's own thresholds (export/thresholds.toml) use the same
#: 3-image floor; a model calibrated wrongly flips tens of decisive samples.
MAX_DECISIVE_FLIPS = 3
MAX_DECISIVE_FLIP_FRACTION = 0.02
NEAR_TIE = 0.05
#: Camera-like frames pushed through the runner's frame code per model.
FRAMES = 12
FLOAT_KEYS = ("tflite-fp32", "onnx-fp32")


def load_samples(bundle) -> tuple[np.ndarray, np.ndarray]:
    info = bundle.metadata.get("samples")
    if not isinstance(info, dict) or "file" not in info:
        raise UserError(f"bundle {bundle.root} has no sample set: re-export it")
    path = bundle.root / info["file"]
    if not path.is_file() or sha256_of(path) != info.get("sha256"):
        raise UserError(f"sample set {path} is missing or its checksum does not match: re-copy "
                        "or re-export the bundle")
    try:
        with np.load(path) as archive:
            pixels, labels = archive["x"], archive["y"]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"sample set {path} cannot be read ({exc}): re-export the bundle") \
            from None
    if "scale" not in bundle.preprocessing:  # not pixels (hand landmark features): as stored
        return pixels.astype(np.float32), labels
    return to_input(pixels, bundle.preprocessing), labels


def is_image_pipeline(bundle) -> bool:
    return (bundle.metadata.get("pipeline") or {}).get("kind", "image") == "image"


def expected_input(bundle) -> list[int]:
    """The per-example input shape the runner feeds: (H, W, C) from the preprocessing for image
    tasks, else metadata ``input.shape`` without its batch dimension."""
    if is_image_pipeline(bundle):
        spec = bundle.preprocessing
        return [int(spec["size"][0]), int(spec["size"][1]), int(spec["channels"])]
    return [int(v) for v in bundle.metadata["input"]["shape"][1:]]


def declared_input(classifier) -> list | None:
    """The model's own input shape without the batch dimension (None entries: dynamic)."""
    if hasattr(classifier, "interpreter"):
        shape = classifier.interpreter.get_input_details()[0]["shape"]
    elif hasattr(classifier, "session"):
        shape = classifier.session.get_inputs()[0].shape
    else:
        return None
    return [int(v) if isinstance(v, (int, np.integer)) and v > 0 else None for v in shape[1:]]


def io_problem(bundle, classifier, probs: np.ndarray) -> str | None:
    """Why the runner could not use this model with this bundle's labels and preprocessing."""
    wanted = expected_input(bundle)
    declared = declared_input(classifier)
    if declared is not None and (len(declared) != len(wanted) or any(
            d is not None and d != w for d, w in zip(declared, wanted))):
        shown = "x".join("?" if d is None else str(d) for d in declared)
        source = ("preprocessing size/channels" if is_image_pipeline(bundle)
                  else "metadata input.shape")
        return (f"model input is {shown} but the bundle's {source} give "
                f"{'x'.join(map(str, wanted))}: re-export the bundle")
    if probs.ndim != 2 or probs.shape[1] != len(bundle.labels):
        outputs = probs.shape[1] if probs.ndim == 2 else probs.shape
        return (f"model has {outputs} outputs but the bundle lists {len(bundle.labels)} labels: "
                "re-export the bundle")
    if not np.all(np.isfinite(probs)):
        return "model outputs NaN or infinity on the sample images: re-export the bundle"
    return None


def float_reference(bundle, x: np.ndarray, threads: int) -> tuple[str, np.ndarray] | None:
    """(key, probabilities) of the bundle's float model on the samples, or None if it has none."""
    models = bundle.models
    for key in FLOAT_KEYS:
        if key in models:
            try:
                classifier = load_classifier(bundle.model_path(key), models[key]["format"],
                                             threads)
                probs = classifier.predict(x)
            except Exception:  # noqa: BLE001 - its own row reports the failure
                return None
            if probs.ndim == 2 and probs.shape[1] == len(bundle.labels):
                return key, probs
    return None


def float_comparison(probs: np.ndarray, reference: np.ndarray, y: np.ndarray) -> dict:
    """Agreement of a quantised model with the float one on the samples, decisive ones apart."""
    ranked = np.sort(reference, axis=1)
    decisive = (ranked[:, -1] - ranked[:, -2]) >= NEAR_TIE
    flips = probs.argmax(1) != reference.argmax(1)
    return {"agreement": float(np.mean(~flips)), "decisive_flips": int(np.sum(flips & decisive)),
            "decisive": int(np.sum(decisive)),
            "float_accuracy": float(np.mean(reference.argmax(1) == y))}


def float_problem(comparison: dict, accuracy: float, float_key: str) -> str | None:
    allowed = max(MAX_DECISIVE_FLIPS,
                  int(MAX_DECISIVE_FLIP_FRACTION * comparison["decisive"]))
    if comparison["decisive_flips"] > allowed:
        return (f"disagrees with {float_key} on {comparison['decisive_flips']} of "
                f"{comparison['decisive']} samples the float model is sure of (at most {allowed} "
                "allowed): quantisation broke it, re-export")
    if accuracy < comparison["float_accuracy"] - TOLERANCE:
        return (f"sample accuracy {accuracy:.3f} is below {float_key}'s "
                f"{comparison['float_accuracy']:.3f}: quantisation broke it, re-export")
    return None


def sample_frames(bundle, count: int = FRAMES) -> list[tuple[np.ndarray, str]]:
    """Camera-like 640x480 frames of the bundle's own samples, each with the class it shows,
    plus a black and a white one (which must show nothing)."""
    from device.footage import sample_frame

    with np.load(bundle.root / bundle.metadata["samples"]["file"]) as archive:
        images, y = archive["x"], archive["y"]
    rng = np.random.default_rng(0)
    picks = [(i * 7919) % len(images) for i in range(min(count, len(images)))]
    labels = bundle.labels
    # A class index past the label list (labels shorter than the outputs) is named by its
    # index: the model row then fails on the mismatch itself, with its own message.
    frames = [(sample_frame(images[i], rng, bundle.preprocessing),
               labels[int(y[i])] if int(y[i]) < len(labels) else f"#{int(y[i])}")
              for i in picks]
    return frames + blank_frames()


def hand_sample_frames(bundle) -> list[tuple[np.ndarray, str]]:
    """A hand bundle's sample photos (``extra_files`` role ``sample-frame``, each with the label
    the float pipeline gave it at export), plus the blank frames. Bundles exported before they
    existed get the blank frames alone."""
    import cv2

    frames = []
    for entry in bundle.extra_files:
        if entry.get("role") == "sample-frame":
            image = cv2.imread(str(bundle.root / entry["file"]))
            if image is None:
                raise UserError(f"{bundle.root / entry['file']} cannot be decoded: re-export "
                                "the bundle")
            frames.append((image, entry["label"]))
    return frames + blank_frames()


def blank_frames() -> list[tuple[np.ndarray, str]]:
    """A black and a white 640x480 frame: every pipeline must answer ``nothing`` for both (the
    hands pipeline's samples are landmark features, so these are the frames it gets)."""
    from device.footage import FRAME
    from device.result import NOTHING

    return [(np.zeros((*FRAME, 3), np.uint8), NOTHING),
            (np.full((*FRAME, 3), 255, np.uint8), NOTHING)]


#: At least this fraction of the samples' camera-like frames must show their own class (or,
#: when "unsure", guess it): the samples' pre-fitted inputs never meet the camera step, which
#: can turn every answer wrong. The quick test models show 10-12 of 12; a weak but honest model
#: (3 epochs on the 8x8 digits, 70 % on the samples) is unsure of all 12 and guesses 8 right.
MIN_FRAME_ACCURACY = 0.25


def frame_problem(bundle_dir: Path, key: str, threads: int,
                  frames: list[tuple[np.ndarray, str]], still: bool = False) -> str | None:
    """Run ``frames`` through the runner's own frame code with model ``key``; any exception, a
    label outside the bundle's vocabulary, a blank frame called a class, or too few sample
    frames showing their class is a problem."""
    from device.result import NOTHING, UNSURE

    try:
        classify = frame_classifier(bundle_dir, key, threads, still)
        vocabulary = set(classify.labels) | {NOTHING, UNSURE}
        right, subjects = 0, 0
        for index, (frame, expected) in enumerate(frames):
            label, guess = classify(frame)
            if label not in vocabulary:
                return f"frame {index} gave label {label!r}, which is not in the bundle"
            if expected == NOTHING and label != NOTHING:
                kind = "black" if not frame.any() else "white" if frame.min() == 255 else "blank"
                return f"a {kind} frame was classified as {label!r} instead of nothing"
            if expected != NOTHING:
                subjects += 1
                right += label == expected or (label == UNSURE and guess == expected)
        if subjects and right < MIN_FRAME_ACCURACY * subjects:
            return (f"only {right} of {subjects} camera-like frames of the samples show their "
                    "own class through the runner (the camera step, the hand thresholds or the "
                    "labels do not fit the model)")
    except UserError as exc:
        return f"frames: {exc}"
    except Exception as exc:  # noqa: BLE001 - what would crash the runner fails the check
        return f"frames crash the runner: {type(exc).__name__}: {exc}"
    return None


def frame_classifier(bundle_dir: Path, key: str, threads: int, still: bool = False):
    """frame -> (label, unsure's guess) through the runner's own frame path
    (:class:`FramePipeline`); ``still`` as the runner reads an image folder (the hand sample
    frames are photos)."""
    from device.pipeline import FramePipeline

    pipeline = FramePipeline(bundle_dir, model=key, threads=threads, roi="auto", still=still)

    def classify(frame: np.ndarray) -> tuple[str, str | None]:
        result = pipeline(frame)
        return result.label, result.guess

    classify.labels = pipeline.labels
    return classify


def model_row(bundle, key: str, x: np.ndarray, y: np.ndarray, reference, threads: int,
              runs: int, frames: list[np.ndarray]) -> dict:
    """One model's checks, in the order a runner would hit them; the first problem is its status."""
    entry = bundle.models[key]
    row = {"model": key, "backend": "", "status": "ok", "verdict": verdict_state(entry)}
    if row["verdict"] == "failed":
        row["verdict_detail"] = verdict_summary(entry)
    classifier = load_classifier(bundle.model_path(key), entry["format"], threads)
    row["backend"] = classifier.backend
    probs = classifier.predict(x)
    problem = io_problem(bundle, classifier, probs)
    if problem:
        row["status"] = f"FAIL: {problem}"
        return row
    accuracy = float(np.mean(probs.argmax(1) == y))
    expected = entry.get("sample_accuracy")
    row.update(accuracy=accuracy, expected=expected)
    if isinstance(expected, (int, float)) and accuracy < expected - TOLERANCE:
        row["status"] = f"FAIL: sample accuracy {accuracy:.3f} < export's {expected:.3f}"
        return row
    if reference is not None and key != reference[0] and entry.get("precision") != "fp32":
        comparison = float_comparison(probs, reference[1], y)
        row["float_agreement"] = comparison["agreement"]
        problem = float_problem(comparison, accuracy, reference[0])
        if problem and row["verdict"] == "failed":
            # The export measured this damage and marked the model: the device merely confirms it.
            row["float_problem"] = problem
        elif problem:
            row["status"] = f"FAIL: {problem}"
            return row
    # A model whose verdict failed is never run on frames (the pipeline refuses it): skipped.
    problem = frame_problem(bundle.root, key, threads, frames,
                            still=not is_image_pipeline(bundle)) \
        if row["verdict"] != "failed" else None
    if problem:
        row["status"] = f"FAIL: {problem}"
        return row
    times = []
    for i in range(runs):
        started = time.perf_counter()
        classifier.predict(x[i % len(x)][None])
        times.append((time.perf_counter() - started) * 1000)
    row["median_ms"] = float(np.median(times))
    return row


def extra_rows(bundle, threads: int) -> list[dict]:
    """The pipeline's other models (hand palm/landmark stages): each must at least load."""
    stages = (bundle.metadata.get("pipeline") or {}).get("stages") or {}
    rows = []
    for stage, variants in stages.items():
        for variant, relative in (variants or {}).items():
            path = bundle.root / relative
            row = {"model": f"{stage}:{variant}", "backend": "", "status": "ok",
                   "verdict": "unknown"}
            try:
                model_format = "onnx" if path.suffix == ".onnx" else "tflite"
                classifier = load_classifier(path, model_format, threads)
                row["backend"] = classifier.backend
            except UserError as exc:
                row["status"] = f"FAIL: {exc}"
            except Exception as exc:  # noqa: BLE001
                row["status"] = f"FAIL: {type(exc).__name__}: {exc}"
            rows.append(row)
    return rows


def check(bundle_dir: Path, threads: int = 1, runs: int = 20) -> tuple[list[dict], bool]:
    """One row per model (the pipeline's stage models too). Returns (rows, all_ok).

    A failing export verdict is reported in the row but does not fail the check by itself, nor
    does the quantisation damage it already records (an int8 model the export marked failed
    disagrees with float here too): the runner never picks such a model by default, ``--model``
    refuses it, and ``deploy`` decides about the default one. Every other check still applies.
    """
    bundle = open_bundle(bundle_dir)  # raises on any checksum mismatch or malformed metadata
    x, y = load_samples(bundle)
    frames = sample_frames(bundle) if is_image_pipeline(bundle) else hand_sample_frames(bundle)
    reference = float_reference(bundle, x, threads)
    rows = []
    for key in ordered_keys(bundle):
        try:
            row = model_row(bundle, key, x, y, reference, threads, runs, frames)
        except UserError as exc:
            row = {"model": key, "backend": "", "status": f"FAIL: {exc}",
                   "verdict": verdict_state(bundle.models[key])}
        except Exception as exc:  # noqa: BLE001 - a model that crashes the runtime fails
            row = {"model": key, "backend": "", "status": f"FAIL: {type(exc).__name__}: {exc}",
                   "verdict": verdict_state(bundle.models[key])}
        rows.append(row)
    rows += extra_rows(bundle, threads)
    return rows, all(row["status"] == "ok" for row in rows)


def ordered_keys(bundle) -> list[str]:
    """The bundle's models, the runner's preference order first."""
    keys = list(bundle.models)
    return sorted(keys, key=lambda k: PREFERENCE.index(k) if k in PREFERENCE else len(PREFERENCE))


def default_model(bundle) -> str | None:
    """The model the bundle is meant to run: the first of :data:`PREFERENCE` it has, whatever
    its verdict (``Bundle.choose`` then skips it if it failed, which deploy refuses). A failing
    int8 model whose ``-mixed`` sibling passed was rescued by the export's fallback: the sibling
    is what the bundle means to run (CI stop 34: a tiny model's int8 lost 1.33 pt)."""
    keys = ordered_keys(bundle)
    if not keys:
        return None
    first, rescue = keys[0], keys[0] + RESCUE_SUFFIX
    if (verdict_state(bundle.models[first]) == "failed" and rescue in bundle.models
            and verdict_state(bundle.models[rescue]) == "passed"):
        return rescue
    return first


def format_table(rows: list[dict], task: str, samples: int) -> str:
    lines = [f"device check: {task}, {samples} sample images",
             f"{'model':<22}{'backend':<16}{'accuracy':>9}{'export':>9}{'vs fp32':>9}"
             f"{'median ms':>11}  {'verdict':<9}status"]
    for row in rows:
        accuracy = f"{row['accuracy']:.3f}" if "accuracy" in row else "-"
        expected = f"{row['expected']:.3f}" if isinstance(row.get("expected"), float) else "-"
        agreement = f"{row['float_agreement']:.3f}" if "float_agreement" in row else "-"
        latency = f"{row['median_ms']:.3f}" if "median_ms" in row else "-"
        lines.append(f"{row['model']:<22}{row['backend']:<16}{accuracy:>9}{expected:>9}"
                     f"{agreement:>9}{latency:>11}  {row.get('verdict', '-'):<9}{row['status']}")
    return "\n".join(lines)


def verdict_warnings(bundle, rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row.get("verdict") == "failed":
            seen = f"; here too: {row['float_problem']}" if row.get("float_problem") else ""
            lines.append(f"warning: {row['model']} failed its export checks "
                         f"({row['verdict_detail']}{seen}): the runner never picks it by default")
    return lines


def main(bundle_dir: Path, threads: int, as_json: bool) -> int:
    rows, ok = check(bundle_dir, threads)
    bundle = open_bundle(bundle_dir, verify=False)
    failed = [row for row in rows if row["status"] != "ok"]
    if as_json:
        print(json.dumps({"ok": ok, "task": bundle.task, "default": default_model(bundle),
                          "models": rows}))
    else:
        samples = (bundle.metadata.get("samples") or {}).get("count", "?")
        print(format_table(rows, bundle.task, samples))
        for line in verdict_warnings(bundle, rows):
            print(line, file=sys.stderr)
        print("check: ok" if ok else "check: FAILED", flush=True)
    if failed:
        first = failed[0]
        print(f"error: check failed: {first['model']}: {first['status'][len('FAIL: '):]}",
              file=sys.stderr, flush=True)
    return 0 if ok else 1
