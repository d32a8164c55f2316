"""Export: every format loads and predicts, checksums hold, tampering is refused, and a failed
export leaves the previous bundle loadable."""

import json
import shutil

import numpy as np
import pytest

from device.backends import load_classifier
from device.bundle import open_bundle, sha256_of
from device.errors import UserError
from device.preprocess import to_input
from export.formats import DEFAULT_FORMATS, FORMATS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_bundle(quick_artifacts):
    return quick_artifacts("digits") / "digits" / "bundle"


def copy_bundle(bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_every_format_loads_and_predicts_the_samples(digits_bundle):
    bundle = open_bundle(digits_bundle)
    assert sorted(bundle.models) == sorted(DEFAULT_FORMATS)
    with np.load(digits_bundle / "samples.npz") as samples:
        x, y = to_input(samples["x"], bundle.preprocessing), samples["y"]
    for key, entry in bundle.models.items():
        classifier = load_classifier(bundle.model_path(key), entry["format"])
        probs = classifier.predict(x)
        assert probs.shape == (len(y), 10)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.02)
        assert np.mean(probs.argmax(1) == y) > 0.85, key


def test_onnx_fp32_matches_keras_numerically(quick_artifacts):
    import keras

    root = quick_artifacts("digits") / "digits"
    model = keras.models.load_model(root / "model.keras", compile=False)
    bundle = open_bundle(root / "bundle")
    with np.load(root / "bundle" / "samples.npz") as samples:
        x = to_input(samples["x"], bundle.preprocessing)
    reference = model.predict(x, verbose=0)
    for key in ("onnx-fp32", "tflite-fp32"):
        probs = load_classifier(bundle.model_path(key), bundle.models[key]["format"]).predict(x)
        assert np.max(np.abs(probs - reference)) < 1e-4, key


def test_metadata_describes_files_and_preprocessing(digits_bundle):
    metadata = json.loads((digits_bundle / "metadata.json").read_text())
    assert metadata["labels"] == [str(d) for d in range(10)]
    assert metadata["input"]["shape"] == [1, 28, 28, 1]
    int8 = metadata["preprocessing"]["int8_input"]
    assert int8["dtype"] == "int8" and abs(int8["scale"] - 1 / 255) < 1e-3
    for entry in metadata["models"]:
        path = digits_bundle / entry["file"]
        assert entry["bytes"] == path.stat().st_size and entry["sha256"] == sha256_of(path)
        assert entry["format"] in ("tflite", "onnx")
        assert entry["precision"] in ("fp32", "fp16", "dynamic", "int8", "int8-mixed")
    fp32 = next(e for e in metadata["models"] if e["key"] == "tflite-fp32")
    int8_entry = next(e for e in metadata["models"] if e["key"] == "tflite-int8")
    assert int8_entry["bytes"] <= 0.3 * fp32["bytes"]
    report = json.loads((digits_bundle / "report.json").read_text())
    assert [r["format"] for r in report["rows"]] == ["keras-fp32", *DEFAULT_FORMATS]
    assert (digits_bundle / "report.md").read_text().count("\n|") >= len(DEFAULT_FORMATS) + 2


def test_corrupted_model_file_is_refused(digits_bundle, tmp_path):
    bundle_dir = copy_bundle(digits_bundle, tmp_path)
    model = bundle_dir / FORMATS["tflite-int8"].filename
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"checksum mismatch for .*model_int8\.tflite"):
        open_bundle(bundle_dir)
    (bundle_dir / FORMATS["onnx-fp32"].filename).write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot load ONNX model"):
        load_classifier(bundle_dir / FORMATS["onnx-fp32"].filename, "onnx")


def test_tampered_checksum_is_refused(digits_bundle, tmp_path):
    bundle_dir = copy_bundle(digits_bundle, tmp_path)
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    metadata["models"][0]["sha256"] = "0" * 64
    (bundle_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(UserError, match="checksum mismatch"):
        open_bundle(bundle_dir)


def test_other_bundle_format_version_is_refused(digits_bundle, tmp_path):
    bundle_dir = copy_bundle(digits_bundle, tmp_path)
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    metadata["bundle_format"] = 99
    (bundle_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(UserError, match="bundle format 99"):
        open_bundle(bundle_dir)


def test_failed_export_leaves_the_previous_bundle(quick_artifacts, tmp_path, monkeypatch):
    """Simulate a converter crashing half-way: the old bundle must stay intact and loadable."""
    import export.formats.onnx_int8 as onnx_int8
    from export.exporter import export

    root = tmp_path / "artifacts"
    shutil.copytree(quick_artifacts("digits") / "digits", root / "digits")
    before = (root / "digits" / "bundle" / "metadata.json").read_text()

    def crash(context, destination):
        destination.write_bytes(b"half a model")
        raise RuntimeError("simulated crash mid-export")

    import dataclasses

    monkeypatch.setitem(FORMATS, "onnx-int8", dataclasses.replace(FORMATS["onnx-int8"],
                                                                  convert=crash))
    with pytest.raises(UserError, match="onnx-int8: export failed .*simulated crash"):
        export("digits", root, calibration_count=50, latency_runs=2,
               calibration_dir=tmp_path / "calibration")
    assert (root / "digits" / "bundle" / "metadata.json").read_text() == before
    open_bundle(root / "digits" / "bundle")  # checksums still hold
    leftovers = [p.name for p in (root / "digits").iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    assert onnx_int8.FORMAT.convert is not crash


def test_flip_averaging_model_exports_and_stays_mirror_invariant(data_dir, tmp_path):
    """--tta bakes mirror averaging into the model: it must survive save, load and conversion,
    so every exported file gives the same answer for an image and its mirror."""
    from export.exporter import export
    from train.trainer import TrainConfig, train

    train(TrainConfig(task="fruits", data_dir=data_dir, limit_per_class=20, epochs=1,
                      image_size=32, tta=True, out_dir=tmp_path, verbose=0))
    export("fruits", tmp_path, ["tflite-fp32", "tflite-int8", "onnx-fp32"], calibration_count=50,
           latency_runs=2, calibration_dir=tmp_path / "calibration")
    bundle = open_bundle(tmp_path / "fruits" / "bundle")
    with np.load(bundle.root / "samples.npz") as samples:
        x = to_input(samples["x"][:16], bundle.preprocessing)
    for key, entry in bundle.models.items():
        classifier = load_classifier(bundle.model_path(key), entry["format"])
        same = classifier.predict(x)
        mirrored = classifier.predict(np.ascontiguousarray(x[:, :, ::-1]))
        tolerance = 0.02 if key.endswith("int8") else 1e-5
        assert np.max(np.abs(same - mirrored)) <= tolerance, key


def test_digits_pair_averages_its_two_scales_in_every_exported_file(tmp_path):
    """The digits pair saves a model that averages the image and the image shrunk by a pixel a
    side (train/models.py with_scale_averaging): its output is exactly that mean (the shrunk
    view computed here with OpenCV, independently of the model's own layers), and every exported
    file answers like the Keras model, int8 within quantisation error."""
    import cv2
    import keras

    from export.exporter import export
    from train.models import load_saved_model
    from train.trainer import TrainConfig, train

    metrics = train(TrainConfig(task="digits", embedded=True, epochs=1, out_dir=tmp_path,
                                verbose=0))
    assert metrics["arch"] == "convnet-pair" and metrics["config"]["tta"] is True
    model = load_saved_model(tmp_path / "digits" / "model.keras")
    core = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    export("digits", tmp_path, ["tflite-fp32", "tflite-int8", "onnx-fp32"], calibration_count=50,
           latency_runs=2, calibration_dir=tmp_path / "calibration")
    bundle = open_bundle(tmp_path / "digits" / "bundle")
    with np.load(bundle.root / "samples.npz") as samples:
        x = to_input(samples["x"][:16], bundle.preprocessing)
    shrunk = np.stack([cv2.resize(np.pad(image[:, :, 0], 1), (28, 28),
                                  interpolation=cv2.INTER_LINEAR) for image in x])[..., None]
    expected = (core.predict(x, verbose=0) + core.predict(shrunk, verbose=0)) / 2
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-4)
    assert np.abs(core.predict(x, verbose=0) - expected).max() > 1e-3  # the view matters
    for key, entry in bundle.models.items():
        probs = load_classifier(bundle.model_path(key), entry["format"]).predict(x)
        tolerance = 0.06 if key.endswith("int8") else 1e-4
        assert np.abs(probs - model.predict(x, verbose=0)).max() <= tolerance, key
