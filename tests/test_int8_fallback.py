"""int8 that does not slip: the per-model verdict, the accuracy-controlled fallback and the
effect ranking of ``export diagnose``, on a deliberately fragile model.

The fragile model is a digits `convnet` trained on the demo's data (scikit-learn's bundled digits)
with one planted flaw that only int8 sees: channel 0 of ``block1_1`` is switched off (BatchNorm
gamma and beta 0: exactly 0 for every image) and ``block1_2_conv`` gets a weight 500 times its
largest on that dead input channel. In float that weight multiplies zero; in int8 its
per-channel scale rounds every real weight of the layer to zero, and the model collapses to
10 %. Keeping ``block1_2_conv`` in float is the fix (for onnxruntime with one more layer,
block1_1_conv or block2_1_conv: the pair is the fix there, and on some CPUs neither alone helps).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from device.bundle import open_bundle
from export.regression import MIXED_SUFFIX, is_checked, thresholds, verdict

PLANTED = "block1_2_conv"
FORMATS = ["tflite-fp32", "tflite-int8", "onnx-fp32", "onnx-int8"]


def plant_fragile_layer(model, source: str = "block1_1", target: str = PLANTED,
                        channel: int = 0, ratio: float = 500.0) -> None:
    """Make ``target`` unquantisable without changing what the float model computes."""
    gamma, beta, mean, variance = model.get_layer(f"{source}_bn").get_weights()
    gamma[channel], beta[channel] = 0.0, 0.0
    model.get_layer(f"{source}_bn").set_weights([gamma, beta, mean, variance])
    (kernel,) = model.get_layer(target).get_weights()
    kernel[:, :, channel, :] = ratio * np.abs(kernel).max()
    model.get_layer(target).set_weights([kernel])


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    """Artifacts root with the planted demo model, exported with the fallback on."""
    import keras

    from export.exporter import export
    from train.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("fragile")
    train(TrainConfig(task="digits", embedded=True, arch="convnet", epochs=8, out_dir=root,
                      verbose=0))
    path = root / "digits" / "model.keras"
    model = keras.models.load_model(path, compile=False)
    plant_fragile_layer(model)
    model.save(path)
    export("digits", root, FORMATS, calibration_count=200, latency_runs=3,
           calibration_dir=root / "calibration")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("key", ["tflite-int8", "onnx-int8"])
def test_fallback_keeps_the_planted_layer_float_and_passes(fragile, key):
    bundle = open_bundle(fragile / "digits" / "bundle")  # checksums of every file, mixed included
    metadata = json.loads((bundle.root / "metadata.json").read_text())
    entries = {entry["key"]: entry for entry in metadata["models"]}
    assert not entries[key]["verdict"]["ok"], "the planted flaw did not break int8"
    assert entries[key]["verdict"]["violations"]
    mixed = entries[key + MIXED_SUFFIX]
    assert mixed["verdict"]["ok"], mixed["verdict"]
    kept = mixed["verdict"]["layers_kept_float"]
    # TFLite needs the planted layer alone. onnxruntime's quantiser, told to skip that one Conv,
    # still leaves most of the damage (measured: 32 and 54 of ~360 flips undone), and no other
    # layer alone undoes any; re-ranked beside it, a neighbour (block1_1_conv or block2_1_conv)
    # undoes all 300, so two layers in measured runs (the fixture trains afresh each time). A
    # one-off ranking once ran out of the limit in CI; never more than the fallback's own limit.
    # On an AVX512-VNNI CPU (AMD EPYC Zen 4, 2026-11-24) the planted layer alone undid no flip
    # (32-54 on the AMD AVX2 boxes), so the greedy first pick was a tie broken by a ~0.001
    # error difference (once `dense`), and the planted layer came second or third: the
    # onnxruntime fix is a pair, whichever order the fallback finds it in.
    if key == "tflite-int8":
        assert kept == [PLANTED], kept
    else:
        assert PLANTED in kept and len(kept) <= thresholds("digits")["max_layers_kept_float"], kept
    assert key + MIXED_SUFFIX in bundle.models  # the device sees it under its own key
    assert mixed["file"] != entries[key]["file"]
    report = (bundle.root / "report.md").read_text()
    assert f"| {key}{MIXED_SUFFIX} |" in report and PLANTED in report


@pytest.mark.slow
@pytest.mark.parametrize("key", ["tflite-int8", "onnx-int8"])
def test_diagnose_ranks_the_planted_layer_first(fragile, key):
    from export.diagnose import diagnose

    result = diagnose("digits", key, fragile, images=32, calibration_dir=fragile / "calibration")
    assert result["flips"] > 0 and result["on"] == "flipped test images"
    # Every format: the first layer whose int8 output loses the signal is the planted one.
    assert result["first_collapse"]["layer"].startswith("block1_2_"), result["first_collapse"]
    ranked = [row["layer"] for row in result["effect"]]
    assert PLANTED in ranked
    if key == "tflite-int8":  # one layer is the whole fix: its effect ranks first, alone
        assert ranked[0] == PLANTED, result["effect"]
        assert result["effect"][0]["flips_undone"] > 0
        assert all(row["flips_undone"] < result["effect"][0]["flips_undone"]
                   for row in result["effect"][1:])
    elif result["effect"][0]["flips_undone"] <= 0:  # onnx-int8 where the fix is a pair only
        assert ranked[0] == PLANTED and result["effect"][0]["with_partner"] > 0, result["effect"]
        assert "every pair was kept in float" in open(result["report"]).read()
    else:  # onnx-int8 where the planted layer alone undoes some flips (AVX2 CPUs)
        assert ranked[0] == PLANTED, result["effect"]
    assert "effect on the output" in open(result["report"]).read()


def test_verdict_fields_follow_the_contract():
    limits = {"max_accuracy_drop_pt": 0.5, "min_agreement": 0.99, "max_class_recall_drop_pt": 3.0}
    comparison = {"accuracy_delta": -0.02, "agreement": 0.95, "decisive_agreement": 0.96,
                  "recall_delta": {}, "images": 1000}
    judged = verdict(comparison, limits, ["dense"])
    assert set(judged) == {"ok", "violations", "accuracy_delta", "agreement",
                           "decisive_agreement", "layers_kept_float"}
    assert judged["ok"] is False and len(judged["violations"]) == 2
    assert judged["layers_kept_float"] == ["dense"]
    assert verdict(comparison, limits, checked=False)["ok"] is True  # float32: no reference
    assert is_checked("tflite-int8-mixed") and is_checked("onnx-int8")
    assert not is_checked("onnx-fp32")


def test_ranking_set_puts_flipped_images_first():
    from export.fallback import ranking_set

    reference = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    probs = np.array([[0.5, 0.5], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    order = ranking_set(probs, reference, count=3)
    assert set(order[:2]) == {1, 3} and order[2] == 0


def test_keras_layer_names_from_converted_node_names():
    from export.fallback import keras_layer_name

    weighted = ["block1_1_conv", "block1_2_conv", "dense", "probs"]
    tflite = ("digits_convnet_1/block1_2_relu_1/Relu;digits_convnet_1/block1_2_bn_1/batchnorm;"
              "digits_convnet_1/block1_2_conv_1/convolution")
    assert keras_layer_name(tflite, weighted) == "block1_2_conv"
    onnx = "Conv__44;StatefulPartitionedCall/digits_convnet_1/block1_2_conv_1/convolution/x:0"
    assert keras_layer_name(onnx, weighted) == "block1_2_conv"
    assert keras_layer_name("Unknown__1", weighted) == "Unknown__1"
