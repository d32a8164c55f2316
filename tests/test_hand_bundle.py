"""Bundle format 2 on the device side: extra files (hand models, licences) are verified by
checksum, a tampered one is refused, and a stage variant is resolved per --model key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import hand_models
from device.bundle import open_bundle, sha256_of
from device.errors import UserError


@pytest.fixture(scope="module")
def models() -> Path:
    try:
        return hand_models.model_dir()
    except UserError as exc:
        pytest.skip(f"hand models not fetched ({exc})")


def entry(root: Path, relative: str, role: str | None = None) -> dict:
    path = root / relative
    found = {"file": relative, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    if role:
        found["role"] = role
    return found


def hand_bundle(root: Path, models: Path) -> Path:
    """A format 2 hands bundle made of the real MediaPipe files: the palm model stands in for
    the classifier file (these tests check files and choices, not inference)."""
    (root / "hands").mkdir(parents=True)
    (root / "LICENSES").mkdir()
    for name in ("palm_detection_full.tflite", "hand_landmark_full.tflite"):
        shutil.copy2(models / name, root / "hands" / name)
    shutil.copy2(models / "hand_landmark_lite.tflite", root / "hands" / "hand_landmark_int8.tflite")
    shutil.copy2(models / "LICENSE", root / "LICENSES" / "mediapipe-LICENSE")
    shutil.copy2(models / "palm_detection_lite.tflite", root / "model_int8.tflite")
    shutil.copy2(models / "palm_detection_lite.tflite", root / "model_fp32.onnx")
    stages = {"palm": {"tflite-fp16": "hands/palm_detection_full.tflite"},
              "landmark": {"tflite-fp16": "hands/hand_landmark_full.tflite",
                           "tflite-int8": "hands/hand_landmark_int8.tflite"}}
    models_list = [{"key": key, "format": fmt, "precision": precision, **entry(root, file)}
                   for key, fmt, precision, file in (
                       ("tflite-int8", "tflite", "int8", "model_int8.tflite"),
                       ("onnx-fp32", "onnx", "fp32", "model_fp32.onnx"))]
    extras = [entry(root, f, role) for f, role in (
        ("hands/palm_detection_full.tflite", "palm-model"),
        ("hands/hand_landmark_full.tflite", "landmark-model"),
        ("hands/hand_landmark_int8.tflite", "landmark-model"),
        ("LICENSES/mediapipe-LICENSE", "licence"))]
    metadata = {"bundle_format": 2, "task": "handsigns", "labels": ["rock", "paper", "scissors"],
                "input": {"shape": [1, 63]},
                "preprocessing": {"camera": "landmarks"}, "models": models_list,
                "pipeline": {"kind": "hands", "features": "landmarks-v1", "stages": stages},
                "extra_files": extras}
    (root / "metadata.json").write_text(json.dumps(metadata))
    return root


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_good_bundle_opens_and_names_its_pipeline(models, tmp_path):
    bundle = open_bundle(hand_bundle(tmp_path / "b", models))
    assert bundle.kind == "hands"
    assert [e["role"] for e in bundle.extra_files].count("licence") == 1


def test_stage_variant_same_key_else_the_formats_float(models, tmp_path):
    bundle = open_bundle(hand_bundle(tmp_path / "b", models))
    assert bundle.stage_variant("landmark", "tflite-int8")[0] == "tflite-int8"
    assert bundle.stage_variant("palm", "tflite-int8")[0] == "tflite-fp16"
    assert bundle.stage_variant("palm", "tflite-dynamic")[1].name == "palm_detection_full.tflite"
    assert "palm tflite-fp16 (no tflite-int8 variant: float)" in \
        bundle.describe_stages("tflite-int8")
    with pytest.raises(UserError, match="no onnx variant for --model onnx-fp32"):
        bundle.stage_variant("palm", "onnx-fp32")


def test_a_tampered_hand_model_is_refused(models, tmp_path):
    root = hand_bundle(tmp_path / "b", models)
    tamper(root / "hands" / "palm_detection_full.tflite")
    with pytest.raises(UserError, match="checksum mismatch for .*palm_detection_full.tflite"):
        open_bundle(root)


def test_a_tampered_licence_is_refused_and_a_missing_model_named(models, tmp_path):
    root = hand_bundle(tmp_path / "b", models)
    tamper(root / "LICENSES" / "mediapipe-LICENSE")
    with pytest.raises(UserError, match="mediapipe-LICENSE"):
        open_bundle(root, keys=["tflite-int8"])
    root = hand_bundle(tmp_path / "c", models)
    (root / "hands" / "hand_landmark_int8.tflite").unlink()
    with pytest.raises(UserError, match="hand_landmark_int8.tflite is missing"):
        open_bundle(root)


def test_only_the_chosen_models_stage_files_are_verified(models, tmp_path):
    root = hand_bundle(tmp_path / "b", models)
    tamper(root / "hands" / "hand_landmark_int8.tflite")
    with pytest.raises(UserError, match="hand_landmark_int8"):
        open_bundle(root, keys=["tflite-int8"])
    bundle = open_bundle(root, verify=False)
    needed = {e["file"] for e in bundle.extra_files_for(["tflite-int8"])}
    assert "hands/hand_landmark_int8.tflite" in needed


def test_a_format_1_bundle_is_an_image_pipeline(models, tmp_path):
    root = hand_bundle(tmp_path / "b", models)
    metadata = json.loads((root / "metadata.json").read_text())
    metadata["bundle_format"] = 1
    del metadata["pipeline"], metadata["extra_files"]
    # A format-1 bundle is an image classifier, so it carries image preprocessing.
    metadata["preprocessing"] = {"size": [28, 28], "colour": "gray", "channels": 1,
                                 "scale": 1 / 255, "offset": 0.0, "camera": "crop"}
    (root / "metadata.json").write_text(json.dumps(metadata))
    bundle = open_bundle(root)
    assert bundle.kind == "image" and bundle.extra_files == [] and bundle.stage_paths("x") == {}


@pytest.mark.parametrize("features", ["landmarks-v2", 7])
def test_landmark_features_this_runner_does_not_compute_are_refused(models, tmp_path, features):
    """A classifier trained on other features (a newer toolkit's) would read this runner's 63
    values as something else and answer nonsense: the bundle is refused in one line."""
    root = hand_bundle(tmp_path / "b", models)
    metadata = json.loads((root / "metadata.json").read_text())
    metadata["pipeline"]["features"] = features
    (root / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(UserError, match="pipeline.features .* update the device"):
        open_bundle(root)
