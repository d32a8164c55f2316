"""The landmark route end to end: a short real training on the hand-sign photos' landmarks
(found by the device tracker, cached), then the export into a format 2 hands bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hand_models
from device.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_train_without_hand_models_says_how_to_fetch_them(tmp_path, data_dir):
    env = {**os.environ, "EDGEKIT_HAND_MODELS": str(tmp_path / "none")}
    result = subprocess.run([sys.executable, "-m", "train", "handsigns", "--arch", "landmarks",
                             "--data-dir", str(data_dir), "--out", str(tmp_path / "out")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --arch landmarks needs MediaPipe's hand")
    assert "python -m hand_models fetch" in result.stderr
    assert not (tmp_path / "out").exists()


def test_landmarks_is_for_hand_signs_only():
    from train.trainer import TrainConfig, resolved

    with pytest.raises(UserError, match="hand signs only"):
        resolved(TrainConfig(task="digits", arch="landmarks"))


def test_augmentation_keeps_hands_hand_shaped():
    from device.hands import features
    from train.hand_trainer import augment

    rng = np.random.default_rng(0)
    hands = rng.normal(0, 1, (4, 21, 3))
    canonical = features.canonical_landmarks(hands, "right")
    augmented = augment(canonical, rng, copies=5).reshape(20, 21, 3)
    assert np.allclose(augmented[:, 0], 0.0, atol=0.1)          # wrist stays near the origin
    sizes = features.palm_size(augmented)
    assert np.all((sizes > 0.7) & (sizes < 1.3))                # scale varies a little
    assert not np.allclose(augmented[:5], np.repeat(canonical[:1], 5, 0))


def test_a_class_limit_picks_photos_before_extraction_and_checks_spread_over_classes():
    from export.hands import spread_rows
    from train.hand_trainer import limited

    files = {"train": [f"p{i}" for i in range(10)], "y_train": np.array([0] * 6 + [1] * 4),
             "groups": np.array(list("aabbccddee")), "labels": ["a", "b"]}
    few = limited(files, 3, seed=1)
    assert len(few["train"]) == 6 and list(np.bincount(few["y_train"])) == [3, 3]
    assert all(files["train"].index(p) < 6 for p, y in zip(few["train"], few["y_train"]) if y == 0)
    assert limited(files, None, 1) is files
    assert list(spread_rows(270, 90)[[0, -1]]) == [0, 269] and len(spread_rows(270, 90)) == 90
    assert list(spread_rows(5, None)) == list(spread_rows(5, 9)) == [0, 1, 2, 3, 4]


def test_temperature_scaling_sharpens_an_underconfident_model_without_changing_its_answers():
    """Labels drawn from a model's own fused probabilities, then its logits made 4x too small:
    the fit finds T near 1/4, folds it into the last layer, and no view's argmax changes; too
    few validation photos keep T = 1."""
    import keras

    from train.hand_trainer import MIN_CALIBRATION_PHOTOS, build_classifier, calibrate_temperature
    from train.landmarks import empty

    rng = np.random.default_rng(0)
    n = 600
    lm = empty(n)
    lm.found[:] = True
    lm.view_landmarks[:, :2] = rng.normal(0, 1, (n, 2, 21, 3))
    lm.view_presence[:, :2] = 1.0
    lm.view_handedness[:, :2] = "right"
    model = build_classifier(3, seed=0)
    x, owner, _ = lm.views()
    dense = model.get_layer("probs")
    kernel, bias = dense.get_weights()
    logits = keras.Model(model.inputs, dense.input).predict(x, verbose=0) @ kernel + bias
    scale = 3.0 / np.abs(logits).mean()
    dense.set_weights([kernel * scale, bias * scale])
    probs = model.predict(x, verbose=0)
    fused = np.stack([probs[owner == k].mean(0) for k in range(n)])
    y = np.array([rng.choice(3, p=p / p.sum()) for p in fused])
    dense.set_weights([kernel * scale / 4, bias * scale / 4])
    before = model.predict(x, verbose=0).argmax(1)
    result = calibrate_temperature(model, lm, np.arange(n), y)
    assert 0.18 < result["temperature"] < 0.35
    assert result["validation_nll_after"] < result["validation_nll_before"]
    assert (model.predict(x, verbose=0).argmax(1) == before).all()
    few = calibrate_temperature(model, lm, np.arange(MIN_CALIBRATION_PHOTOS - 1), y)
    assert few["temperature"] == 1.0 and "not calibrated" in few["note"]


@pytest.fixture(scope="module")
def landmark_run(quick_artifacts):
    """The session's quick hand-sign model (tests/conftest.py): trained on the landmarks and
    exported in the default formats, as `python -m train handsigns` + `export` do."""
    try:
        hand_models.model_dir()
    except UserError as exc:
        pytest.skip(f"hand models not fetched ({exc})")
    root = quick_artifacts("handsigns") / "handsigns"
    return json.loads((root / "metrics.json").read_text()), root / "bundle"


@pytest.mark.slow
def test_metrics_count_every_test_photo_and_the_ones_without_a_hand(landmark_run):
    metrics, _ = landmark_run
    test = metrics["test"]
    assert metrics["arch"] == "landmarks" and metrics["dataset"]["test_total"] == 270
    assert sum(test["no_hand"].values()) == metrics["no_hand"]["test"]
    # A photo without a hand is an error: accuracy over all 270 is at most the found share.
    assert test["accuracy"] <= 1 - metrics["no_hand"]["test"] / 270 + 1e-9
    found = 270 - metrics["no_hand"]["test"]
    assert test["accuracy"] == pytest.approx(test["accuracy_with_hand"] * found / 270)
    assert test["accuracy_with_hand"] > 0.8
    assert metrics["dataset"]["validation_split"] == "clip-grouped"
    assert 0.25 <= metrics["calibration"]["temperature"] <= 4.0
    assert metrics["calibration"]["validation_nll_after"] <= \
        metrics["calibration"]["validation_nll_before"]


@pytest.mark.slow
def test_the_bundle_carries_the_hand_pipeline_and_its_licence(landmark_run):
    from device.bundle import open_bundle

    _, bundle_dir = landmark_run
    bundle = open_bundle(bundle_dir)
    assert bundle.metadata["bundle_format"] == 2 and bundle.kind == "hands"
    assert bundle.pipeline["features"] == "landmarks-v1"
    assert bundle.metadata["input"]["shape"] == [1, 63]
    stages = bundle.pipeline["stages"]
    assert set(stages) == {"palm", "landmark"}
    for variants in stages.values():
        assert {"tflite-fp16", "onnx-fp32"} <= set(variants)
    files = {e["file"]: e for e in bundle.extra_files}
    assert files["LICENSES/mediapipe-LICENSE"]["sha256"] == hand_models.FILES["LICENSE"][1]
    assert "LICENSES/mediapipe-NOTICE" in files
    assert files["hands/palm_detection_full.tflite"]["sha256"] == \
        hand_models.FILES["palm_detection_full.tflite"][1]
    assert all(m["verdict"]["ok"] for m in bundle.metadata["models"]), bundle.metadata["models"]
    assert bundle.stage_variant("palm", "onnx-fp32")[1].suffix == ".onnx"
    # Staged in a temp folder and renamed into place: with the umask's mode, not mkdtemp's 0700
    # (a service account running the device could not read a hand bundle before).
    from device.atomic import current_umask
    assert bundle_dir.stat().st_mode & 0o777 == 0o777 & ~current_umask()


@pytest.mark.slow
def test_onnx_stages_match_and_int8_is_kept_only_within_the_limit(landmark_run):
    from export.hand_stages import MAX_LANDMARK_ERROR

    _, bundle_dir = landmark_run
    report = json.loads((bundle_dir / "report.json").read_text())
    stages = json.loads((bundle_dir / "metadata.json").read_text())["pipeline"]["stages"]
    for row in report["stages"]:
        if row["key"] == "onnx-fp32":
            assert row["mean_error"] < 0.01, row     # a conversion, not an approximation
        if row["key"] == "tflite-int8":
            assert row["kept"] == (row["mean_error"] <= MAX_LANDMARK_ERROR)
            assert ("tflite-int8" in stages[row["stage"]]) == row["kept"]
    pipelines = {row["model"]: row for row in report["pipelines"]}
    assert {"tflite-fp32", "tflite-int8", "onnx-fp32", "onnx-int8"} <= set(pipelines)
    assert pipelines["tflite-fp32"]["label_agreement"] == 1.0
    assert pipelines["onnx-fp32"]["label_agreement"] > 0.95
    assert "Whole pipeline per --model" in (bundle_dir / "report.md").read_text()


@pytest.mark.slow
def test_check_runs_the_bundles_sample_photos_palm_to_label(landmark_run, tmp_path):
    """Sweep finding: `device check` gave a hand bundle blank frames only, so nothing after the
    palm detector ran in the gate (thresholds that hide every hand passed). The bundle now
    carries two test photos per class the float pipeline reads right; check runs them through
    the runner's still-image pipeline and wants a quarter of them right."""
    import shutil
    import subprocess
    import sys

    _, bundle_dir = landmark_run
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    frames = [e for e in metadata["extra_files"] if e.get("role") == "sample-frame"]
    assert sorted(e["label"] for e in frames) == sorted(metadata["labels"] * 2)
    assert all((bundle_dir / e["file"]).stat().st_size < 60_000 for e in frames)

    def check(bundle):
        return subprocess.run([sys.executable, "-m", "device", "check", "--bundle", str(bundle)],
                              capture_output=True, text=True, timeout=600)

    good = check(bundle_dir)
    assert good.returncode == 0, good.stdout + good.stderr
    blind = tmp_path / "blind"
    shutil.copytree(bundle_dir, blind)
    metadata["pipeline"]["thresholds"].update(min_presence=0.999, min_scan_presence=0.999)
    (blind / "metadata.json").write_text(json.dumps(metadata))
    refused = check(blind)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "0 of 6" in refused.stderr and "show their own class" in refused.stderr
