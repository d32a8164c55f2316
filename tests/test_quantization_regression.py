"""Accuracy regression: every quantised model in each task's bundle against its Keras fp32 model.

Thresholds come from export/thresholds.toml (accuracy drop, top-1 agreement, per-class recall
drop). Images: each task's full test split (digits 9,000, fruits 1,957, hand signs 270). All are
below a minute through LiteRT/onnxruntime, so no subset is needed. Hand signs' model is the
landmark classifier: its inputs are the landmark features of the test photos with a hand. The models are trained and
exported by the session fixture (tests/conftest.py, REGRESSION_RECIPES), cached by content hash.

A failure names the command that shows which layers broke:
``python -m export diagnose TASK --format FORMAT``.
"""

from pathlib import Path

import numpy as np
import pytest

from device.backends import load_classifier
from device.bundle import open_bundle
from device.preprocess import to_input
from export.compare import compare, predict_all
from export.regression import QUANTISED, explain, thresholds, violations
from tests.conftest import broken_int8

pytestmark = pytest.mark.slow
TASKS = ("digits", "fruits", "handsigns")
CHECKED = [key for key in QUANTISED if key != "onnx-dynamic"]  # the bundle's default formats


def landmark_features(trained, data_dir):
    """Hand signs' classifier input: the features of the test photos where a hand is found
    (cached landmarks, as the export compares them)."""
    from export.hands import features_of, photos_and_landmarks

    variant = trained.spec.get("hand_models", "full")
    files, _, test_lm = photos_and_landmarks(trained, str(data_dir), variant)
    return features_of(test_lm), files["y_test"][test_lm.found], trained.labels


@pytest.fixture(scope="module")
def float_reference(regression_artifacts, data_dir):
    """Per task: (root, test inputs, labels y, label names, Keras fp32 probabilities)."""
    from export.source import load_trained, training_data

    cache = {}

    def get(task):
        if task not in cache:
            root = regression_artifacts(task)
            trained = load_trained(root, task)
            model = trained.load_model()
            if trained.metrics.get("arch") == "landmarks":
                x, y, labels = landmark_features(trained, data_dir)
            else:
                data = training_data(trained, str(data_dir))
                x, y, labels = to_input(data.x_test, trained.spec), data.y_test, data.labels
            cache[task] = (root, x, y, labels,
                           model.predict(x, batch_size=256, verbose=0))
        return cache[task]
    return get


@pytest.mark.parametrize("model_key", CHECKED)
@pytest.mark.parametrize("task", TASKS)
def test_quantised_model_stays_within_thresholds(task, model_key, float_reference):
    root, x, y, labels, reference = float_reference(task)
    bundle = open_bundle(root / task / "bundle")
    classifier = load_classifier(bundle.model_path(model_key), bundle.models[model_key]["format"])
    result = compare(predict_all(classifier, x), reference, y, labels)
    limits = thresholds(task)
    assert result["images"] >= min(limits["min_images"], len(y))
    found = violations(result, limits)
    print(f"{task} {model_key}: accuracy {result['accuracy']:.4f} "
          f"({result['accuracy_delta'] * 100:+.2f} pt), agreement {result['agreement']:.4f}, "
          f"{result['flips']} flips ({result['near_tie_flips']} near-ties)")
    assert not found, explain(task, model_key, found)


# --- the check can fail: a deliberately broken int8 model -------------------------------------

@pytest.mark.parametrize("model_key", ["tflite-int8", "onnx-int8"])
def test_regression_check_catches_a_badly_calibrated_model(model_key, float_reference, tmp_path):
    from export.diagnose import diagnose

    root, x, y, labels, reference = float_reference("digits")
    bundle_dir = broken_int8(root, "digits", model_key, tmp_path)
    bundle = open_bundle(bundle_dir)
    classifier = load_classifier(bundle.model_path(model_key), bundle.models[model_key]["format"])
    result = compare(predict_all(classifier, x), reference, y, labels)
    found = violations(result, thresholds("digits"))
    assert found, f"an all-zeros calibration went unnoticed: {result}"
    message = explain("digits", model_key, found)
    assert f"python -m export diagnose digits --format {model_key}" in message
    # ...and diagnose points at the damage: far lower SQNR than a healthy model's layers.
    # (SQNR on calibration images: the effect ranking, tests/test_int8_fallback.py, re-quantises
    # with the task's calibration and would rebuild a healthy model from this broken one.)
    healthy = diagnose("digits", model_key, bundle_dir=root / "digits" / "bundle", images=16,
                       calibration_dir=root / "calibration", effect=False)
    broken = diagnose("digits", model_key, bundle_dir=bundle_dir, images=16,
                      calibration_dir=root / "calibration", effect=False)
    assert broken["worst"][0]["sqnr_db"] < healthy["worst"][0]["sqnr_db"] - 10
    assert broken["first_collapse"] is not None and healthy["first_collapse"] is None
    assert Path(broken["report"]).read_text().startswith("# Quantisation diagnosis")


def test_violations_logic_on_constructed_comparisons():
    limits = {"max_accuracy_drop_pt": 0.5, "min_agreement": 0.99, "max_class_recall_drop_pt": 3.0}
    good = {"accuracy_delta": -0.001, "agreement": 0.998, "recall_delta": {"a": -0.01}}
    assert violations(good, limits) == []
    bad = {"accuracy_delta": -0.02, "agreement": 0.95, "recall_delta": {"a": 0.0, "b": -0.2}}
    found = violations(bad, limits)
    assert len(found) == 3 and "class 'b'" in found[2]


def test_small_splits_get_a_three_image_floor_large_ones_the_literal_limits():
    limits = {"max_accuracy_drop_pt": 0.5, "min_agreement": 0.99, "max_class_recall_drop_pt": 3.0,
              "min_resolvable_images": 3}

    def flips(count, images):
        return {"accuracy_delta": -count / images, "agreement": 1 - count / images,
                "recall_delta": {}, "images": images, "flips": count, "near_tie_flips": count}

    assert violations(flips(3, 270), limits) == []          # 98.9 %, -1.1 pt: the floor
    assert len(violations(flips(4, 270), limits)) == 2      # 98.5 %, -1.5 pt: caught
    # On 9,000 images the literal limits hold: 46 flips (-0.51 pt) break the accuracy limit,
    # 91 (98.99 %) the agreement limit as well.
    assert [v.split()[0] for v in violations(flips(46, 9000), limits)] == ["accuracy"]
    assert len(violations(flips(91, 9000), limits)) == 2
    assert "4 flips, 4 of them near-ties" in violations(flips(4, 270), limits)[1]
    # Exactly the floor, as two float accuracies' difference gives it (a rounding error above
    # 3/450): within the limits. CI's fog test once refused such a bundle.
    at_floor = flips(3, 450)
    at_floor["accuracy_delta"] = 299 / 450 - 302 / 450
    assert -at_floor["accuracy_delta"] * 100 > 100 * 3 / 450
    assert violations(at_floor, limits) == []


def test_compare_counts_flips_and_near_ties():
    from export.compare import compare

    reference = np.array([[0.51, 0.49], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    quantised = np.array([[0.49, 0.51], [0.4, 0.6], [0.2, 0.8], [0.6, 0.4]])
    result = compare(quantised, reference, np.array([0, 0, 1, 1]), ["a", "b"])
    assert result["flips"] == 2 and result["near_tie_flips"] == 1
    assert result["agreement"] == 0.5
    # Judged on the three decisive images, one confident flip of three remains a regression.
    assert abs(result["decisive_agreement"] - 2 / 3) < 1e-9
    assert result["decisive_recall_delta"]["a"] == -1.0
    limits = {"max_accuracy_drop_pt": 100.0, "min_agreement": 0.99, "max_class_recall_drop_pt": 3.0}
    assert "agreement 66.67% on decisive images" in violations(result, limits)[0]
    # Only near-tie flips: nothing to report.
    ties_only = compare(quantised[:1], reference[:1], np.array([0]), ["a", "b"])
    assert ties_only["flips"] == 1 and violations(ties_only, limits) == []


def test_thresholds_file_has_the_export_issue_values():
    limits = thresholds("digits")
    assert limits["max_accuracy_drop_pt"] == 0.5 and limits["min_agreement"] == 0.99
