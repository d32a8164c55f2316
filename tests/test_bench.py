"""Smoke tests of the benchmarks: they run on a real small bundle for a few iterations and write
their tables. No timing is asserted (these machines are noisy); only that the numbers exist."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_make_bench_writes_the_comparison_table(quick_artifacts, tmp_path):
    artifacts = quick_artifacts("digits")
    result = subprocess.run([sys.executable, "bench/run.py", "--tasks", "digits,fruits",
                             "--artifacts", str(artifacts), "--rounds", "3", "--frames", "12",
                             "--repeats", "1", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fruits: no bundle" in result.stderr  # a task without a bundle is skipped, not fatal
    results = json.loads((tmp_path / "results.json").read_text())
    task = results["tasks"][0]
    methods = [row["method"] for row in task["latency"]]
    assert "keras model.predict (seeds)" in methods and "tflite-int8 x2" in methods
    assert "preprocessing alone" in methods
    assert task["end_to_end"]["device"]["fps"] > 0 and task["end_to_end"]["ratio"] > 0
    assert 0 < task["cold_start"]["device"]["peak_rss_mb"] < task["cold_start"]["keras"]["peak_rss_mb"]
    assert "| digits |" in (tmp_path / "results.md").read_text()


def test_device_bench_prints_latency_and_fps(quick_artifacts):
    bundle = quick_artifacts("digits") / "digits" / "bundle"
    result = subprocess.run([sys.executable, "-m", "device", "bench", "--bundle", str(bundle),
                             "--runs", "5", "--models", "tflite-int8,onnx-int8", "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {(r["model"], r["threads"]) for r in report["latency"]} == {
        ("tflite-int8", 1), ("tflite-int8", 2), ("onnx-int8", 1), ("onnx-int8", 2)}
    assert all(r["fps"] > 0 for r in report["end_to_end"])
    assert {r["defaults"] for r in report["preprocess"]} == {"live source", "image folder"}
    assert all(r["median_ms"] > 0 and r["frame"] == "640x480" for r in report["preprocess"])
