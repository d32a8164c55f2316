"""``python -m export TASK``: model.keras -> artifacts/<task>/bundle/ with every format compared.

The bundle is assembled in a staging folder next to ``bundle/`` and swapped in only when every
format converted, loaded and was evaluated. A failure anywhere leaves the previous bundle as it
was. Each model is evaluated through the device's own backends, so the report's numbers are the
device's numbers.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.atomic import owned_temp_dir, sweep_stale, write_json, write_text
from device.backends import load_classifier
from device.bundle import BUNDLE_FORMAT, sha256_of
from device.errors import UserError
from device.interrupts import raise_if_interrupted
from device.preprocess import to_input
from device.tasks import TASKS
from export.compare import NEAR_TIE_MARGIN, compare, median_latency_ms, predict_all
from export.formats import DEFAULT_FORMATS, FORMATS
from export.formats._context import ExportContext
from export.regression import MIXED_SUFFIX, explain, is_checked, thresholds, verdict
from export.source import Trained, load_trained, training_data

SAMPLES_PER_CLASS = 20
#: Staging folders are named ``<prefix><pid>-*``; a later export removes those of dead processes.
STAGING_PREFIX, WORK_PREFIX = ".bundle-staging-", ".export-work-"


def sweep_leftovers(folder: Path) -> None:
    """Remove staging folders an export killed with SIGKILL (no cleanup possible) left behind."""
    for prefix in (STAGING_PREFIX, WORK_PREFIX):
        for path in sweep_stale(folder, prefix):
            print(f"export: removed {path.name}, left by an export that was killed", flush=True)


def calibration_inputs(trained: Trained, data, count: int, seed: int,
                       folder: Path | None = None) -> np.ndarray:
    """The model's calibration set, (re)built when missing, stale, or drawn from other data.

    It lives beside the model (``artifacts/<task>/calibration/``) and is keyed by the training
    data's source and content: after the demo (scikit-learn's digits) an export of the MNIST
    model rebuilds it instead of calibrating on the demo's images.
    """
    import calibration_data

    folder = folder or calibration_data.folder_for(trained.folder)
    key = calibration_data.data_key(data.x_train, data.y_train, data.source)
    try:
        x, _, manifest = calibration_data.load(trained.task, trained.spec, trained.labels, folder,
                                               data=key)
        if manifest["count"] != min(count, len(data.y_train)) or manifest["seed"] != seed:
            raise UserError("calibration set built with other settings")
    except UserError as reason:
        print(f"calibration: building {trained.task} set ({reason})", flush=True)
        calibration_data.build(trained.task, data.x_train, data.y_train, data.labels,
                               trained.spec, data.source, count, seed, folder)
        x, _, manifest = calibration_data.load(trained.task, trained.spec, trained.labels, folder,
                                               data=key)
    return x


def run_step(key: str, convert, context, destination: Path) -> None:
    """One format's conversion with a one-line log: ``key: ok 1.2 s -> file (0.1 MB)``."""
    started = time.time()
    try:
        convert(context, destination)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any converter failure aborts the whole bundle
        raise UserError(f"{key}: export failed ({type(exc).__name__}: {exc}); the previous "
                        "bundle is left as it was") from None
    size = destination.stat().st_size / 1e6
    print(f"{key}: ok {time.time() - started:.1f} s -> {destination.name} ({size:.2f} MB)",
          flush=True)


def input_quantization(path: Path, model_format: str) -> dict | None:
    """dtype/scale/zero-point of a TFLite model's integer input, for metadata.json."""
    if model_format != "tflite":
        return None
    classifier = load_classifier(path, "tflite")
    if not classifier.integer_input:
        return None
    scale, zero_point = classifier.input["quantization"]
    return {"dtype": np.dtype(classifier.input["dtype"]).name, "scale": float(scale),
            "zero_point": int(zero_point)}


def sample_set(data, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A few test images per class (uint8, fitted) for the device's self-test after deploy."""
    rng = np.random.default_rng(seed)
    index = np.sort(np.concatenate([rng.permutation(np.flatnonzero(data.y_test == c))[:per_class]
                                    for c in range(len(data.labels))]))
    return data.x_test[index], data.y_test[index]


def export_versions() -> dict:
    import importlib.metadata as md

    names = ["tensorflow", "tensorflow-cpu", "keras", "numpy", "onnx", "onnxruntime", "tf2onnx", "ai-edge-litert",
             "opencv-python-headless"]
    found = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return found


def export(task: str, artifacts: Path = Path("artifacts"), formats: list[str] | None = None,
           data_dir: str | None = None, int8_io: str = "int8", calibration_count: int = 500,
           calibration_seed: int = 0, latency_runs: int = 100,
           calibration_dir: Path | None = None, fallback: bool = True,
           stage_photos: int | None = None) -> Path:
    """Export every requested format of ``task`` into ``artifacts/<task>/bundle``; return it.

    ``stage_photos`` (hand-landmark bundles only): how many test photos the hand stages and
    whole pipelines are judged on (default: all).

    With ``fallback``, an int8 model that fails its thresholds gets a partly-float sibling
    (``tflite-int8-mixed``...; export/fallback.py) when one within them can be found."""
    formats = formats or DEFAULT_FORMATS
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown format(s) {unknown}: choose from {', '.join(FORMATS)}")
    trained = load_trained(artifacts, task)
    if trained.metrics.get("arch") == "landmarks":
        from export.hands import export_hands
        # A user's own gestures ship MediaPipe's stages in float: re-quantising the same
        # palm/landmark models for every gesture set, judged on a few dozen of the user's
        # photos, would cost minutes and prove little (hand signs' export judges them on 270).
        user_task = task not in TASKS
        return export_hands(trained, formats, data_dir, int8_io, calibration_count,
                            calibration_seed, latency_runs, hand_int8=not user_task,
                            stage_photos=stage_photos)
    model = trained.load_model()
    data = training_data(trained, data_dir)
    spec = trained.spec
    needs_calibration = any(FORMATS[f].needs_calibration for f in formats)
    calibration = calibration_inputs(trained, data, calibration_count, calibration_seed,
                                     calibration_dir) \
        if needs_calibration else None

    bundle = trained.folder / "bundle"
    sweep_leftovers(trained.folder)
    staging = owned_temp_dir(trained.folder, STAGING_PREFIX)
    workdir = owned_temp_dir(trained.folder, WORK_PREFIX)
    try:
        model.export(str(workdir / "saved_model"), format="tf_saved_model", verbose=False)
        context = ExportContext(workdir / "saved_model", workdir, calibration, int8_io)
        for key in formats:
            run_step(key, FORMATS[key].convert, context, staging / FORMATS[key].filename)
        x_test = to_input(data.x_test, spec)
        samples_x, samples_y = sample_set(data, SAMPLES_PER_CLASS, calibration_seed)
        np.savez(staging / "samples.npz", x=samples_x, y=samples_y)
        rows, entries, evaluation = evaluate_formats(model, staging, formats, x_test, data,
                                                     latency_runs,
                                                     (to_input(samples_x, spec), samples_y))
        if fallback:
            add_mixed_models(context, model, evaluation, staging, rows, entries)
        metadata = build_metadata(trained, data, entries, staging, int8_io)
        write_json(staging / "metadata.json", metadata)
        report = {"task": task, "created": metadata["created"], "test_images": int(len(x_test)),
                  "rows": rows, "versions": metadata["versions"]}
        publish(staging, bundle, report, render_report(report))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{task}: bundle -> {bundle} (report: {bundle / 'report.md'})")
    return bundle


@dataclass
class Evaluation:
    """What every model of one export is judged against: the Keras float model's test-split
    probabilities, the thresholds, and the bundle's own samples."""

    x_test: np.ndarray
    data: object
    reference: np.ndarray
    limits: dict
    samples: tuple[np.ndarray, np.ndarray]
    latency_runs: int

    def compare_file(self, path: Path, model_format: str) -> dict:
        """Test-split numbers of one model file through the device's own backend."""
        classifier = load_classifier(path, model_format, threads=1)
        return compare(predict_all(classifier, self.x_test), self.reference, self.data.y_test,
                       self.data.labels)


def evaluate_formats(model, staging: Path, formats: list[str], x_test: np.ndarray, data,
                     latency_runs: int, samples: tuple[np.ndarray, np.ndarray]
                     ) -> tuple[list[dict], list[dict], Evaluation]:
    """Report rows (Keras reference first) and metadata model entries for every exported file.

    Each entry also records its accuracy on the bundle's own samples, which ``device check``
    reproduces on the target after a deploy, and its verdict (export/regression.py)."""
    reference = model.predict(x_test, batch_size=256, verbose=0)
    keras_latency = median_latency_ms(lambda x: model(x, training=False), x_test[:1],
                                      latency_runs)
    rows = [{"format": "keras-fp32", "file": "model.keras", "bytes": None,
             **compare(reference, reference, data.y_test, data.labels), **keras_latency}]
    evaluation = Evaluation(x_test, data, reference, thresholds(data.task), samples, latency_runs)
    entries = []
    for key in formats:
        spec = FORMATS[key]
        row, entry = evaluate_model(evaluation, key, staging / spec.filename, spec.format,
                                    spec.precision)
        rows.append(row)
        entries.append(entry)
    return rows, entries, evaluation


def evaluate_model(evaluation: Evaluation, key: str, path: Path, model_format: str,
                   precision: str, layers_kept_float: list[str] | None = None
                   ) -> tuple[dict, dict]:
    """One model file's report row and metadata entry (with its verdict)."""
    data = evaluation.data
    classifier = load_classifier(path, model_format, threads=1)
    probs = predict_all(classifier, evaluation.x_test)
    single_classifier = load_classifier(path, model_format, threads=1)
    latency = median_latency_ms(single_classifier.predict, evaluation.x_test[:1],
                                evaluation.latency_runs)
    row = {"format": key, "file": path.name, "bytes": path.stat().st_size,
           **compare(probs, evaluation.reference, data.y_test, data.labels), **latency}
    judged = verdict(row, evaluation.limits, layers_kept_float, checked=is_checked(key))
    if is_checked(key):
        row["violations"] = judged["violations"]
        if row["violations"]:
            print("warning: " + explain(data.task, key, row["violations"]), flush=True)
    if layers_kept_float:
        row["layers_kept_float"] = list(layers_kept_float)
    print(f"{key}: accuracy {row['accuracy']:.4f} ({row['accuracy_delta'] * 100:+.2f} pt), "
          f"agreement {row['agreement']:.4f}, {row['median_ms']:.2f} ms", flush=True)
    samples_x, samples_y = evaluation.samples
    entry = {"key": key, "file": path.name, "format": model_format,
             "precision": precision, "bytes": path.stat().st_size,
             "sha256": sha256_of(path), "test_accuracy": row["accuracy"],
             "agreement_with_fp32": row["agreement"],
             "sample_accuracy": float(np.mean(
                 predict_all(classifier, samples_x).argmax(1) == samples_y)),
             "verdict": judged}
    quantization = input_quantization(path, model_format)
    if quantization:
        entry["input_quantization"] = quantization
    return row, entry


def add_mixed_models(context, model, evaluation: Evaluation, staging: Path, rows: list[dict],
                     entries: list[dict]) -> None:
    """For each failing int8 model: keep its costliest layers in float, one at a time, until the
    thresholds pass (export/fallback.py); bundle the result under its own ``-mixed`` key. The
    fully int8 file stays, marked failing, so the device never picks it by default."""
    from export.fallback import QUANTISERS, accuracy_controlled

    for entry in list(entries):
        key = entry["key"]
        if key not in QUANTISERS or entry["verdict"]["ok"]:
            continue
        found = accuracy_controlled(QUANTISERS[key](context, model), evaluation,
                                    staging / entry["file"], entry["format"])
        if found is None:
            continue
        path, layers = found
        row, mixed = evaluate_model(evaluation, mixed_key(key), path, entry["format"],
                                    f"{entry['precision']}{MIXED_SUFFIX}", layers)
        rows.append(row)
        entries.append(mixed)


def mixed_key(key: str) -> str:
    return f"{key}{MIXED_SUFFIX}"


def build_metadata(trained: Trained, data, entries: list[dict], staging: Path,
                   int8_io: str) -> dict:
    spec = dict(trained.spec)
    int8 = next((e["input_quantization"] for e in entries if "input_quantization" in e), None)
    if int8:
        spec["int8_input"] = int8
    metrics = trained.metrics
    return {
        "bundle_format": BUNDLE_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": trained.task,
        "labels": trained.labels,
        "input": {"shape": [1, *spec["size"], spec["channels"]], "dtype": "float32",
                  "layout": "NHWC", "int8_io": int8_io},
        "preprocessing": spec,
        # The bundle describes its own task, so the device runs a user's task like a built-in.
        "pipeline": metrics.get("pipeline") or {"kind": "image"},
        "models": entries,
        "samples": {"file": "samples.npz", "sha256": sha256_of(staging / "samples.npz"),
                    "count": int(sum(1 for _ in np.load(staging / "samples.npz")["y"])),
                    "stage": "fit_image uint8 (apply preprocessing scale/offset)"},
        "training": {"arch": metrics.get("arch"), "parameters": metrics.get("parameters"),
                     "test_accuracy": metrics["test"]["accuracy"],
                     "test_loss": metrics["test"]["loss"],
                     "training_seconds": metrics.get("training_seconds"),
                     "dataset": metrics.get("dataset"), "versions": metrics.get("versions")},
        "versions": export_versions(),
    }


def publish(staging: Path, bundle: Path, report: dict, markdown: str) -> None:
    """The report (JSON + Markdown) into the staged bundle, then the bundle into place: the last
    step of every export, whatever the pipeline."""
    write_json(staging / "report.json", report)
    write_text(staging / "report.md", markdown)
    swap_in(staging, bundle)


def swap_in(staging: Path, bundle: Path) -> None:
    """Replace ``bundle`` with ``staging``: the old bundle is moved aside, not deleted, until the
    new one is in place. Not at all if a Ctrl-C or SIGTERM came during the export, even one that
    library code swallowed (CI stop 29: the export published and exited 0)."""
    raise_if_interrupted()
    old = None
    if bundle.exists():
        old = bundle.with_name(f".bundle-old-{int(time.time() * 1000)}")
        bundle.rename(old)
    staging.rename(bundle)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def render_report(report: dict) -> str:
    lines = [f"# Export report: {report['task']}", "",
             f"{report['test_images']} test images; latency is the median of single-image "
             "inference with 1 thread on this CPU, preprocessing excluded.", "",
             "| format | size | accuracy | Δ vs Keras fp32 | agreement | flips (near-ties) | "
             "median ms | p95 ms | within thresholds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in report["rows"]:
        size = f"{row['bytes'] / 1024:.0f} KB" if row["bytes"] else "—"
        verdict = "—" if "violations" not in row else (
            "yes" if not row["violations"] else "**no**: " + "; ".join(row["violations"]))
        if row.get("layers_kept_float"):
            verdict += " (kept in float: " + ", ".join(row["layers_kept_float"]) + ")"
        lines.append(f"| {row['format']} | {size} | {row['accuracy'] * 100:.2f} % | "
                     f"{row['accuracy_delta'] * 100:+.2f} pt | {row['agreement'] * 100:.2f} % | "
                     f"{row.get('flips', 0)} ({row.get('near_tie_flips', 0)}) | "
                     f"{row['median_ms']:.3f} | {row['p95_ms']:.3f} | {verdict} |")
    lines += ["", "Thresholds (export/thresholds.toml): accuracy drop, top-1 agreement and "
              "per-class recall drop against Keras fp32. Flips: test images whose top-1 class "
              "differs from Keras fp32; near-ties: those where Keras' own top two classes were "
              f"within {NEAR_TIE_MARGIN} of each other. A failing row: "
              f"`python -m export diagnose {report['task']} --format FORMAT`.", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    return "\n".join(lines)
