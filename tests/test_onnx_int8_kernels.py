"""The root cause of the ONNX int8 regressions, reproduced on one convolution in a second.

onnxruntime's fused int8 kernels on an x86 CPU with AVX2 but no VNNI multiply uint8 activations
by int8 weights with VPMADDUBSW, which sums pairs of products in 16 bits and saturates. Run the
same QDQ file with every graph optimisation off and it computes the exact int8 arithmetic
(DequantizeLinear -> float Conv -> QuantizeLinear), what ARM (a Pi) and VNNI CPUs compute.
The export's settings (export/formats/onnx_int8.py: unsigned weights) must agree with the exact
arithmetic on every CPU; the old signed-weight settings disagree on this kind of CPU only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.formats._context import CalibrationReader
from export.formats.onnx_int8 import quantize_options
from export.onnx_study import predict

CHANNELS, FILTERS = 64, 16


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((row for row in text.splitlines() if row.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def saturating_cpu() -> bool:
    """x86 with AVX2 and neither AVX-512 VNNI nor AVX-VNNI: where VPMADDUBSW is used."""
    flags = cpu_flags()
    return "avx2" in flags and not {"avx512_vnni", "avx_vnni"} & flags


@pytest.fixture(scope="module")
def float_conv(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """One 3x3 convolution whose int8 products come in large same-sign pairs (as a trained
    network's strongest channels do), and bright inputs that use the top of the uint8 range."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = np.where(rng.uniform(-1, 1, (FILTERS, CHANNELS, 3, 3)) > 0, 1.0, -1.0)
    weights[:, ::2] = 1.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, CHANNELS, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, FILTERS, 8, 8])],
        [numpy_helper.from_array(weights.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("conv") / "conv.onnx"
    onnx.save(model, str(path))
    inputs = rng.uniform(0.9, 1.0, (16, CHANNELS, 8, 8)).astype(np.float32)
    inputs[:, :, 0, 0] = 0.0
    return path, inputs


def kernel_error(float_conv, destination: Path, **options) -> float:
    """Largest gap between the fused x86 kernels and the exact int8 arithmetic, relative to the
    output's range."""
    from onnxruntime.quantization import quantize_static

    path, inputs = float_conv
    quantize_static(str(path), str(destination), CalibrationReader(inputs, "x"), **options)
    fused, exact = predict(destination, inputs, True), predict(destination, inputs, False)
    return float(np.abs(fused - exact).max() / np.abs(exact).max())


def test_export_settings_compute_the_exact_int8_arithmetic(float_conv, tmp_path):
    assert kernel_error(float_conv, tmp_path / "export.onnx", **quantize_options()) < 1e-6


def test_signed_weights_saturate_only_on_avx2_without_vnni(float_conv, tmp_path):
    from onnxruntime.quantization import QuantType

    signed = dict(quantize_options(), activation_type=QuantType.QInt8,
                  weight_type=QuantType.QInt8)
    error = kernel_error(float_conv, tmp_path / "s8s8.onnx", **signed)
    if saturating_cpu():
        assert error > 0.1, "expected VPMADDUBSW saturation on this AVX2 CPU without VNNI"
    else:
        assert error < 1e-6
    # 7-bit weights (reduce_range) keep the pair sums inside 16 bits: the other known remedy.
    reduced = dict(signed, reduce_range=True)
    assert kernel_error(float_conv, tmp_path / "reduced.onnx", **reduced) < 1e-6
