"""``python -m export handsigns`` for a landmark model: a bundle format 2 with the hand pipeline.

What goes in:

- the landmark classifier in every format (calibrated on landmark features of training photos);
- MediaPipe's palm and landmark models under ``hands/`` (the shipped ``.tflite``, fp16 weights),
  their ONNX conversions, and int8 versions only where the mean landmark error against float
  stays within 3 % of the hand box's side on the test photos (otherwise float, and the report
  says so); ``pipeline.stages`` lists each stage's variants by model key;
- MediaPipe's Apache-2.0 licence and the NOTICE under ``LICENSES/``;
- a few test photos the float pipeline reads right, under ``samples/`` (role ``sample-frame``,
  with their ``label``): what ``device check`` runs through the whole pipeline, palm to label,
  since the classifier's feature samples never meet the hand models or the thresholds;
- every extra file with its SHA-256 in ``extra_files``.

The report compares, besides each classifier format, the whole float pipeline with each
quantised one on the test photos: label agreement ("no hand" counting as a label) and landmark
error. Every test photo counts; one where no hand is found is an error.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from device.atomic import make_temp_dir, write_json
from device.backends import load_classifier
from device.bundle import BUNDLE_FORMAT, open_bundle, sha256_of
from device.errors import UserError
from device.hands import features as hand_features
from export.compare import compare, median_latency_ms, predict_all
from export.formats import DEFAULT_FORMATS, FORMATS
from export.formats._context import ExportContext
from export.hand_stages import (
    MAX_LANDMARK_ERROR,
    STAGE_FILES,
    convert_onnx,
    landmark_error,
    quantize_int8,
    record_stage_inputs,
)
from export.regression import QUANTISED, thresholds, violations

NO_HAND = -1
FLOAT_KEY = "tflite-fp32"


def photos_and_landmarks(trained, data_dir: str | None, variant: str) -> tuple[dict, object,
                                                                             object]:
    """The photo files of the dataset the model was trained on and their (cached) landmarks."""
    from train.data import resolve_data_dir
    from train.data.handsigns import photo_files
    from train.hand_trainer import limited
    from train.landmarks import photo_landmarks

    config = trained.metrics.get("config", {})
    images = (config.get("extra") or {}).get("images")
    if images:  # a user's own gestures: their folders, split as in training
        from train.data.folders import photo_files as folder_files
        files = folder_files(Path(data_dir or images["folder"]), images["test_split"],
                             config.get("seed", 42), quiet=True)
    else:
        folder = resolve_data_dir(data_dir) or (Path(config["data_dir"])
                                                if config.get("data_dir") else None)
        files = photo_files(folder)
    if files["labels"] != trained.labels:
        raise UserError(f"the dataset's classes {files['labels']} differ from the model's "
                        f"{trained.labels}: pass the --data-dir the model was trained on")
    # The training photos the model saw (a --limit-per-class run saw a seeded subset): the
    # calibration samples come from them, and no landmarks are found twice.
    files = limited(files, config.get("limit_per_class"), config.get("seed", 42))
    train_lm, _ = photo_landmarks(files["train"], variant)
    test_lm, _ = photo_landmarks(files["test"], variant)
    return files, train_lm, test_lm


def spread_rows(count: int, limit: int | None) -> np.ndarray:
    """``limit`` row indices spread evenly over ``count`` (all rows without a limit): the test
    files are in class order, so every class keeps its share."""
    if not limit or limit >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def features_of(lm) -> np.ndarray:
    """(found photos, 63) features of a PhotoLandmarks."""
    return hand_features.features_batch(lm.landmarks[lm.found], lm.handedness[lm.found])


def calibration_features(train_lm, y_train: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A class-balanced, seeded sample of training-photo features for the int8 classifiers."""
    from calibration_data import balanced_indices

    x, y = features_of(train_lm), y_train[train_lm.found]
    return x[balanced_indices(y, min(count, len(y)), seed)]


def labels_with_misses(lm, probs: np.ndarray) -> np.ndarray:
    """Per photo: the predicted class, or NO_HAND where no hand was found."""
    predicted = np.full(len(lm.found), NO_HAND)
    predicted[lm.found] = probs.argmax(1)
    return predicted


def stage_variants(source: dict[str, Path], staging: Path, workdir: Path, files: dict,
                   y_train: np.ndarray, test_float, with_int8: bool, calibration_count: int,
                   seed: int) -> tuple[dict, list[dict]]:
    """Copy, convert and (where the landmarks survive) quantise the two stages into
    ``staging/hands``. Returns ``pipeline.stages`` and one report row per stage variant."""
    from calibration_data import balanced_indices
    from train.landmarks import stage_landmarks

    hands = staging / "hands"
    hands.mkdir()
    stages: dict[str, dict[str, str]] = {}
    for stage, path in source.items():
        shutil.copy2(path, hands / path.name)
        # The shipped files keep fp16 weights (computed in float32): the tflite float variant.
        stages[stage] = {"tflite-fp16": f"hands/{path.name}"}
        onnx = hands / f"{path.stem}.onnx"
        started = time.time()
        convert_onnx(path, onnx)
        print(f"hands/{onnx.name}: ok {time.time() - started:.1f} s (tf2onnx --tflite)",
              flush=True)
        stages[stage]["onnx-fp32"] = f"hands/{onnx.name}"

    rows = []
    test_paths = files["test"]

    def judge(stage: str, key: str, candidate: Path) -> dict:
        """Swap only ``stage`` for ``candidate`` and compare the landmarks with float's."""
        palm = candidate if stage == "palm" else source["palm"]
        landmark = candidate if stage == "landmark" else source["landmark"]
        found = stage_landmarks(test_paths, palm, landmark)
        error = landmark_error(test_float, found)
        row = {"stage": stage, "key": key, "file": f"hands/{candidate.name}",
               "bytes": candidate.stat().st_size, **error}
        print(f"{row['file']}: landmark error {error['mean_error'] * 100:.2f} % of the hand box "
              f"(p95 {error['p95_error'] * 100:.2f} %), hand found/not disagrees on "
              f"{error['found_disagree']} of {len(test_paths)} photos", flush=True)
        return row

    for stage in source:
        rows.append(judge(stage, "onnx-fp32", hands / f"{source[stage].stem}.onnx"))
    if with_int8:
        index = balanced_indices(y_train, min(calibration_count, len(y_train)), seed)
        calibration = record_stage_inputs([files["train"][i] for i in index], source["palm"],
                                          source["landmark"], limit=calibration_count)
        for stage, path in source.items():
            target = workdir / f"{path.stem}_int8.tflite"
            started = time.time()
            quantize_int8(path, calibration[stage], target, workdir)
            print(f"{target.name}: quantised in {time.time() - started:.1f} s "
                  f"({len(calibration[stage])} calibration inputs)", flush=True)
            row = judge(stage, "tflite-int8", target)
            row["kept"] = row["mean_error"] <= MAX_LANDMARK_ERROR
            if row["kept"]:
                shutil.copy2(target, hands / target.name)
                stages[stage]["tflite-int8"] = f"hands/{target.name}"
            else:
                print(f"warning: {target.name} moves the landmarks by "
                      f"{row['mean_error'] * 100:.2f} % of the hand box (limit "
                      f"{MAX_LANDMARK_ERROR * 100:.0f} %): the {stage} stage stays float",
                      flush=True)
            rows.append(row)
    return stages, rows


def licence_entries(staging: Path) -> None:
    """MediaPipe's licence and the NOTICE into ``LICENSES/`` (they travel with its models)."""
    import hand_models

    licences = staging / "LICENSES"
    licences.mkdir()
    shutil.copy2(hand_models.model_dir() / "LICENSE", licences / "mediapipe-LICENSE")
    shutil.copy2(hand_models.NOTICE, licences / "mediapipe-NOTICE")


def extra_file_entries(staging: Path, stages: dict, frame_labels: dict | None = None
                       ) -> list[dict]:
    """Every file under hands/, LICENSES/ and samples/ with size, SHA-256 and role (a sample
    frame also with the label the float pipeline gave it)."""
    roles = {}
    for stage, variants in stages.items():
        for path in variants.values():
            roles[path] = f"{stage}-model"
    entries = []
    for folder in ("hands", "LICENSES", SAMPLE_FRAMES):
        if not (staging / folder).is_dir():
            continue
        for path in sorted((staging / folder).iterdir()):
            relative = f"{folder}/{path.name}"
            entry = {"file": relative, "bytes": path.stat().st_size, "sha256": sha256_of(path),
                     "role": roles.get(relative, {"LICENSES": "licence",
                                                  SAMPLE_FRAMES: "sample-frame"}.get(folder,
                                                                                     "unused"))}
            if folder == SAMPLE_FRAMES:
                entry["label"] = (frame_labels or {})[path.name]
            entries.append(entry)
    return entries


#: The bundle folder of the hand sample frames, and how many per class.
SAMPLE_FRAMES = "samples"
FRAMES_PER_CLASS = 2
#: Longer side of a stored sample frame (a webcam photo re-encoded: a few kB each).
FRAME_SIDE = 320


def write_sample_frames(staging: Path, paths: list[Path], y: np.ndarray, reference: np.ndarray,
                        labels: list[str]) -> dict[str, str]:
    """``FRAMES_PER_CLASS`` test photos per class that the float pipeline reads right, spread
    over the list, re-encoded small under ``samples/``; returns {file name: label}."""
    import cv2

    folder = staging / SAMPLE_FRAMES
    folder.mkdir()
    written = {}
    for c, label in enumerate(labels):
        right = np.flatnonzero((y == c) & (reference == c))
        for n, index in enumerate(right[np.linspace(0, len(right) - 1, FRAMES_PER_CLASS,
                                                     dtype=int)] if len(right) else []):
            image = cv2.imread(str(paths[index]))
            scale = FRAME_SIDE / max(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            name = f"frame_{c}_{n}.jpg"
            cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            written[name] = label
    return written


def classifier_rows(model, staging: Path, formats: list[str], test_lm, y_test: np.ndarray,
                    labels: list[str], latency_runs: int, samples) -> tuple[list, list, dict]:
    """Each classifier format against Keras on the test photos' features: report rows,
    metadata entries and each format's probabilities (for the pipeline comparison)."""
    x_test = features_of(test_lm)
    y_found = y_test[test_lm.found]
    reference = model.predict(x_test, batch_size=256, verbose=0)
    keras_latency = median_latency_ms(lambda x: model(x, training=False), x_test[:1],
                                      latency_runs)
    # Accuracy over every photo as the device answers it: each photo's views fused.
    accuracy_all = float(np.mean(labels_with_misses(test_lm, test_lm.fused_probs(
        lambda x: model.predict(x, batch_size=256, verbose=0))) == y_test))
    rows = [{"format": "keras-fp32", "file": "model.keras", "bytes": None,
             **compare(reference, reference, y_found, labels), **keras_latency,
             "accuracy_all": accuracy_all}]
    entries, all_probs = [], {}
    limits = thresholds("handsigns")
    for key in formats:
        spec = FORMATS[key]
        path = staging / spec.filename
        classifier = load_classifier(path, spec.format, threads=1)
        probs = predict_all(classifier, x_test)
        all_probs[key] = probs
        latency = median_latency_ms(load_classifier(path, spec.format, threads=1).predict,
                                    x_test[:1], latency_runs)
        row = {"format": key, "file": spec.filename, "bytes": path.stat().st_size,
               **compare(probs, reference, y_found, labels), **latency,
               "accuracy_all": float(np.mean(labels_with_misses(test_lm, test_lm.fused_probs(
                   lambda x, model=classifier: predict_all(model, x))) == y_test))}
        if key in QUANTISED:
            row["violations"] = violations(row, limits)
        rows.append(row)
        print(f"{key}: accuracy {row['accuracy_all']:.4f} over every test photo "
              f"({row['accuracy']:.4f} on the photos with a hand, one view each), agreement "
              f"{row['agreement']:.4f}",
              flush=True)
        entry = {"key": key, "file": spec.filename, "format": spec.format,
                 "precision": spec.precision, "bytes": path.stat().st_size,
                 "sha256": sha256_of(path), "test_accuracy": row["accuracy_all"],
                 "agreement_with_fp32": row["agreement"],
                 "sample_accuracy": float(np.mean(
                     predict_all(classifier, samples[0]).argmax(1) == samples[1])),
                 "verdict": verdict_of(row)}
        from export.exporter import input_quantization

        quantization = input_quantization(path, spec.format)
        if quantization:
            entry["input_quantization"] = quantization
        entries.append(entry)
    return rows, entries, all_probs


def verdict_of(row: dict) -> dict:
    """docs/contracts.md's per-model verdict from a report row (float formats always pass)."""
    found = row.get("violations", [])
    return {"ok": not found, "violations": found, "accuracy_delta": row["accuracy_delta"],
            "agreement": row["agreement"],
            "decisive_agreement": row.get("decisive_agreement", row["agreement"]),
            "layers_kept_float": []}


def pipeline_rows(bundle_dir: Path, keys: list[str], test_paths: list[Path], y_test, labels,
                  test_float) -> tuple[list[dict], np.ndarray]:
    """The whole pipeline per ``--model`` key (stages resolved as the device resolves them)
    against the float pipeline (float stages + the fp32 classifier), on every test photo; and
    the float pipeline's label per photo (NO_HAND where it found none)."""
    from train.landmarks import stage_landmarks

    bundle = open_bundle(bundle_dir)
    landmarks_by_stages: dict[tuple, object] = {}
    results = {}
    for key in [FLOAT_KEY] + [k for k in keys if k != FLOAT_KEY]:
        stages = bundle.stage_paths(key)
        pair = (stages["palm"][1], stages["landmark"][1])
        if pair not in landmarks_by_stages:
            landmarks_by_stages[pair] = stage_landmarks(test_paths, *pair)
        lm = landmarks_by_stages[pair]
        entry = bundle.models[key]
        classifier = load_classifier(bundle.root / entry["file"], entry["format"])
        probs = (lm.fused_probs(lambda x, model=classifier: predict_all(model, x))
                 if lm.found.any() else np.zeros((0, len(labels))))
        results[key] = (labels_with_misses(lm, probs), lm, bundle.describe_stages(key))
    reference, reference_lm, _ = results[FLOAT_KEY]
    rows = []
    for key, (predicted, lm, stages) in results.items():
        error = landmark_error(reference_lm, lm)
        rows.append({"model": key, "stages": stages,
                     "accuracy": float(np.mean(predicted == y_test)),
                     "label_agreement": float(np.mean(predicted == reference)),
                     "no_hand": int(np.sum(predicted == NO_HAND)),
                     "landmark_error": error["mean_error"],
                     "found_disagree": error["found_disagree"]})
        print(f"pipeline {key}: accuracy {rows[-1]['accuracy']:.4f}, label agreement with the "
              f"float pipeline {rows[-1]['label_agreement']:.4f}, landmark error "
              f"{error['mean_error'] * 100:.2f} % ({stages})", flush=True)
    return rows, reference


def export_hands(trained, formats: list[str] | None = None, data_dir: str | None = None,
                 int8_io: str = "int8", calibration_count: int = 500, calibration_seed: int = 0,
                 latency_runs: int = 100, hand_int8: bool = True,
                 stage_photos: int | None = None) -> Path:
    """Export a landmark classifier and its hand pipeline to ``artifacts/handsigns/bundle``.

    The classifier rows use every test photo's cached landmarks; the stage and pipeline checks
    run the tracker afresh per photo and per stage pair, so ``stage_photos`` can cap them."""
    import hand_models

    formats = formats or DEFAULT_FORMATS
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown format(s) {unknown}: choose from {', '.join(FORMATS)}")
    if FLOAT_KEY not in formats:
        formats = [FLOAT_KEY] + formats  # the pipeline comparison's reference
    variant = trained.spec.get("hand_models", "full")
    try:
        source = {stage: hand_models.model_path(stage, variant) for stage in STAGE_FILES}
    except UserError as exc:
        raise UserError(f"exporting a landmark model needs the hand models: {exc}") from None
    model = trained.load_model()
    files, train_lm, test_lm = photos_and_landmarks(trained, data_dir, variant)
    y_test, labels = files["y_test"], trained.labels
    calibration = calibration_features(train_lm, files["y_train"], calibration_count,
                                       calibration_seed)

    bundle = trained.folder / "bundle"
    staging = make_temp_dir(trained.folder, ".bundle-staging-")  # 0755 once in place, not 0700
    workdir = Path(tempfile.mkdtemp(prefix=".export-work-", dir=trained.folder))
    try:
        from export.exporter import publish, run_step

        model.export(str(workdir / "saved_model"), format="tf_saved_model", verbose=False)
        context = ExportContext(workdir / "saved_model", workdir, calibration, int8_io)
        for key in formats:
            run_step(key, FORMATS[key].convert, context, staging / FORMATS[key].filename)
        samples = sample_features(test_lm, y_test, len(labels), calibration_seed)
        np.savez(staging / "samples.npz", x=samples[0], y=samples[1])
        rows, entries, _ = classifier_rows(model, staging, formats, test_lm, y_test, labels,
                                           latency_runs, samples)
        judged = spread_rows(len(files["test"]), stage_photos)
        judged_files = {**files, "test": [files["test"][i] for i in judged]}
        stages, stage_rows = stage_variants(source, staging, workdir, judged_files,
                                            files["y_train"], test_lm.subset(judged), hand_int8,
                                            min(calibration_count, 200), calibration_seed)
        licence_entries(staging)
        metadata = hands_metadata(trained, entries, staging, stages, int8_io, len(samples[1]))
        write_json(staging / "metadata.json", metadata)
        pipelines, float_labels = pipeline_rows(staging, formats, judged_files["test"],
                                                y_test[judged], labels, test_lm.subset(judged))
        frame_labels = write_sample_frames(staging, judged_files["test"], y_test[judged],
                                           float_labels, labels)
        metadata["extra_files"] = extra_file_entries(staging, stages, frame_labels)
        write_json(staging / "metadata.json", metadata)
        report = {"task": trained.task, "created": metadata["created"],
                  "test_images": len(files["test"]), "stage_photos": len(judged),
                  "no_hand": test_lm.missing,
                  "rows": rows, "stages": stage_rows, "pipelines": pipelines,
                  "versions": metadata["versions"]}
        publish(staging, bundle, report, render_hands_report(report))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{trained.task}: bundle -> {bundle} (report: {bundle / 'report.md'})")
    return bundle


def sample_features(test_lm, y_test: np.ndarray, n_classes: int, seed: int,
                    per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A few test photos' features per class (photos with a hand) for ``device check``."""
    x, y = features_of(test_lm), y_test[test_lm.found]
    rng = np.random.default_rng(seed)
    index = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class]
                                    for c in range(n_classes)]))
    return x[index], y[index]


def hands_metadata(trained, entries: list[dict], staging: Path, stages: dict, int8_io: str,
                   sample_count: int) -> dict:
    from device.hands.tracker import DEFAULT_THRESHOLDS
    from export.exporter import export_versions

    metrics = trained.metrics
    return {
        "bundle_format": BUNDLE_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": trained.task,
        "labels": trained.labels,
        "input": {"shape": [1, hand_features.SIZE], "dtype": "float32", "int8_io": int8_io},
        "preprocessing": dict(trained.spec),
        "pipeline": {"kind": "hands", "features": hand_features.VERSION,
                     "hand_models": trained.spec.get("hand_models", "full"),
                     "stages": stages, "thresholds": dict(DEFAULT_THRESHOLDS),
                     "min_confidence": hand_features.MIN_CONFIDENCE},
        "models": entries,
        "extra_files": extra_file_entries(staging, stages),
        "samples": {"file": "samples.npz", "sha256": sha256_of(staging / "samples.npz"),
                    "count": sample_count,
                    "stage": f"landmark features ({hand_features.VERSION}) of test photos"},
        "training": {"arch": metrics.get("arch"), "parameters": metrics.get("parameters"),
                     "test_accuracy": metrics["test"]["accuracy"],
                     "test_loss": metrics["test"]["loss"], "no_hand": metrics.get("no_hand"),
                     "training_seconds": metrics.get("training_seconds"),
                     "dataset": metrics.get("dataset"), "versions": metrics.get("versions")},
        "versions": export_versions(),
    }


def render_hands_report(report: dict) -> str:
    count = report.get("stage_photos", report["test_images"])
    judged = (f"all {count} test photos" if count == report["test_images"] else
              f"{count} of the {report['test_images']} test photos, spread evenly")
    lines = [f"# Export report: {report['task']} (hand landmarks)", "",
             f"{report['test_images']} test photos; no hand found in {report['no_hand']} "
             "(errors in every accuracy over all photos). Classifier latency: median single-"
             "hand inference, 1 thread, features given.", "",
             "## Classifier formats", "",
             "| format | size | accuracy (all photos, views fused) | accuracy (with a hand, "
             "one view) | Δ vs Keras | "
             "agreement | median ms | within thresholds |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in report["rows"]:
        size = f"{row['bytes'] / 1024:.1f} KB" if row["bytes"] else "—"
        verdict = "—" if "violations" not in row else (
            "yes" if not row["violations"] else "**no**: " + "; ".join(row["violations"]))
        lines.append(f"| {row['format']} | {size} | {row['accuracy_all'] * 100:.2f} % | "
                     f"{row['accuracy'] * 100:.2f} % | {row['accuracy_delta'] * 100:+.2f} pt | "
                     f"{row['agreement'] * 100:.2f} % | {row['median_ms']:.3f} | {verdict} |")
    lines += ["", "## Hand model stages against the shipped float .tflite", "",
              f"Landmark error: mean distance of the 21 landmarks from the float pipeline's, "
              f"as a fraction of the hand box's longer side, on the test photos where both find "
              f"a hand ({judged}); int8 is kept only at <= {MAX_LANDMARK_ERROR * 100:.0f} %.",
              "",
              "| stage | variant | file | size | landmark error | p95 | hand found differs | "
              "kept |", "|---|---|---|---:|---:|---:|---:|---|"]
    for row in report["stages"]:
        kept = "yes" if row.get("kept", True) else "**no**: float kept"
        lines.append(f"| {row['stage']} | {row['key']} | {row['file']} | "
                     f"{row['bytes'] / 1e6:.2f} MB | {row['mean_error'] * 100:.2f} % | "
                     f"{row['p95_error'] * 100:.2f} % | {row['found_disagree']} | {kept} |")
    lines += ["", f"## Whole pipeline per --model against the float pipeline ({judged})", "",
              "| --model | stages | accuracy (all photos) | label agreement | no hand | "
              "landmark error |", "|---|---|---:|---:|---:|---:|"]
    for row in report["pipelines"]:
        lines.append(f"| {row['model']} | {row['stages']} | {row['accuracy'] * 100:.2f} % | "
                     f"{row['label_agreement'] * 100:.2f} % | {row['no_hand']} | "
                     f"{row['landmark_error'] * 100:.2f} % |")
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
              ""]
    return "\n".join(lines)
