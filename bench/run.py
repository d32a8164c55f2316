"""``make bench``: where the toolkit stands against the seeds' way, measured side by side.

For each task with a bundle, in one process and interleaved (every round times each method once,
in a shuffled order, on the same frame), so machine noise falls on all methods alike:

* per-frame latency (median, p95) of Keras ``model.predict`` (the seeds' way), a direct Keras
  call, and every bundle format with 1 and 2 threads; preprocessing included, and also alone;
* end-to-end headless throughput on a 640x480 video: the device runner vs the seeds' loop;
* cold start (new process -> first classified frame) and peak RSS of the device runner and of
  the Keras loop, each in a fresh process;
* model file sizes.

Writes bench/results.md and bench/results.json (machine, versions, date) and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from device.atomic import write_json, write_text  # noqa: E402
from device.backends import load_classifier  # noqa: E402
from device.bench import sample_footage  # noqa: E402
from device.bundle import open_bundle  # noqa: E402
from device.camera import FramePreprocessor, parse_roi  # noqa: E402


def stats(times_ms: list[float]) -> dict:
    return {"median_ms": float(np.median(times_ms)), "p95_ms": float(np.percentile(times_ms, 95))}


def read_frames(video: Path, limit: int) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def latency_table(model, bundle, frames, rounds: int, seed: int = 0) -> list[dict]:
    """Interleaved per-frame latency: preprocessing + inference, and each alone."""
    preprocess = FramePreprocessor(bundle.preprocessing, parse_roi("0.6"))
    methods = {"keras model.predict (seeds)": lambda x: model.predict(x, verbose=0),
               "keras direct call": lambda x: model(x, training=False)}
    for key, entry in bundle.models.items():
        for threads in (1, 2):
            classifier = load_classifier(bundle.model_path(key), entry["format"], threads)
            methods[f"{key} x{threads}"] = classifier.predict
    batches = [preprocess(frame)[0] for frame in frames]
    usable = [b for b in batches if b is not None] or [np.zeros((1, *bundle.metadata["input"]["shape"][1:]), np.float32)]
    for method in methods.values():  # warm up every engine before timing any
        for batch in usable[:3]:
            method(batch)
    timings = {name: {"pre": [], "infer": []} for name in methods}
    order = list(methods)
    rng = random.Random(seed)
    for round_index in range(rounds):
        frame = frames[round_index % len(frames)]
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            batch, _ = preprocess(frame)
            middle = time.perf_counter()
            methods[name](batch if batch is not None else usable[0])
            finished = time.perf_counter()
            timings[name]["pre"].append((middle - started) * 1000)
            timings[name]["infer"].append((finished - middle) * 1000)
    rows = []
    for name in methods:
        pre, infer = timings[name]["pre"], timings[name]["infer"]
        total = [a + b for a, b in zip(pre, infer)]
        rows.append({"method": name, "total": stats(total), "inference": stats(infer)})
    all_pre = [t for name in methods for t in timings[name]["pre"]]
    rows.append({"method": "preprocessing alone", "total": stats(all_pre), "inference": None})
    return rows


def throughput(model, bundle_dir: Path, bundle, video: Path, threads: int) -> dict:
    """End-to-end frames per second: the device runner vs the seeds' loop, same video."""
    from bench.seeds_loop import classify_video
    from device.bench import end_to_end_fps

    # The runner gets through the footage in a fraction of a second, so one pass is at the
    # mercy of a scheduler hiccup; the median of five passes is its typical speed. The seeds'
    # loop takes seconds per pass, which averages the same noise out by itself.
    passes = [end_to_end_fps(bundle_dir, video, bundle.choose(), threads) for _ in range(5)]
    device = sorted(passes, key=lambda result: result["fps"])[len(passes) // 2]
    device["passes_fps"] = [round(result["fps"], 1) for result in passes]
    sink = io.StringIO()
    started = time.perf_counter()
    frames = classify_video(model, bundle, str(video), None, sink)
    seeds_seconds = time.perf_counter() - started
    seeds = {"frames": frames, "fps": frames / seeds_seconds,
             "ms_per_frame": 1000 * seeds_seconds / frames}
    return {"device": device, "seeds": seeds, "ratio": device["fps"] / seeds["fps"]}


def process_probe(command: list[str]) -> dict:
    """Cold start and peak RSS of ``command``, measured by bench/probe.py (see why there)."""
    probe = subprocess.run([sys.executable, str(REPO / "bench" / "probe.py"), *command], cwd=REPO,
                           capture_output=True, text=True, check=True)
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    if not result.pop("ok"):
        raise RuntimeError(f"{' '.join(command[:5])} ... failed")
    return result


def cold_starts(bundle_dir: Path, model_path: Path, video: Path, repeats: int) -> dict:
    """Alternating fresh processes: the device runner (int8 TFLite) and the Keras loop."""
    device_cmd = [sys.executable, "-m", "device", "run", "--bundle", str(bundle_dir), "--source",
                  str(video), "--headless", "--model", "tflite-int8", "--max-frames", "60"]
    keras_cmd = [sys.executable, str(REPO / "bench" / "seeds_loop.py"), "--model",
                 str(model_path), "--bundle", str(bundle_dir), "--video", str(video),
                 "--max-frames", "60"]
    runs = {"device": [], "keras": []}
    for _ in range(repeats):
        runs["device"].append(process_probe(device_cmd))
        runs["keras"].append(process_probe(keras_cmd))
    return {name: {"cold_start_s": float(np.median([r["cold_start_s"] for r in results])),
                   "peak_rss_mb": float(max(r["peak_rss_mb"] for r in results))}
            for name, results in runs.items()}


def bench_task(task: str, artifacts: Path, rounds: int, frames: int, repeats: int) -> dict:
    from train.models import load_saved_model

    bundle_dir = artifacts / task / "bundle"
    bundle = open_bundle(bundle_dir)
    model_path = artifacts / task / "model.keras"
    model = load_saved_model(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        video = sample_footage(bundle, Path(tmp), frames)
        decoded = read_frames(video, frames)
        latency = latency_table(model, bundle, decoded, rounds)
        e2e = throughput(model, bundle_dir, bundle, video, threads=2)
        start = cold_starts(bundle_dir, model_path, video, repeats)
    sizes = {key: entry["bytes"] for key, entry in bundle.models.items()}
    sizes["model.keras"] = model_path.stat().st_size
    return {"task": task, "frames": len(decoded), "rounds": rounds, "latency": latency,
            "end_to_end": e2e, "cold_start": start, "sizes": sizes}


def machine() -> dict:
    import importlib.metadata as md

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "onnxruntime",
                 "opencv-python-headless", "numpy"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def render(results: dict) -> str:
    m = results["machine"]
    lines = ["# Benchmark: the device runner vs the seeds' way", "",
             f"{m['date']} on {m['cpu']} ({m['cores']} cores), {m['platform']}, Python "
             f"{m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
             "", "Frames are 640x480 footage rendered from each bundle's real sample images. "
             "Latency rounds are interleaved: every round times each method once, in shuffled "
             "order, on the same frame. `xN` = interpreter threads. End to end: the device "
             "runner's fps is the median of five passes over the footage (headless, 2 threads), "
             "the seeds' loop one pass; both in the same process, one after the other.", ""]
    lines += ["## End to end", "",
              "| task | device runner fps | seeds' loop fps | ratio | cold start device | "
              "cold start Keras | peak RSS device | peak RSS Keras |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for task in results["tasks"]:
        e2e, start = task["end_to_end"], task["cold_start"]
        lines.append(
            f"| {task['task']} | {e2e['device']['fps']:.0f} ({e2e['device']['model']}) | "
            f"{e2e['seeds']['fps']:.1f} | **{e2e['ratio']:.0f}x** | "
            f"{start['device']['cold_start_s']:.2f} s | {start['keras']['cold_start_s']:.2f} s | "
            f"{start['device']['peak_rss_mb']:.0f} MB | {start['keras']['peak_rss_mb']:.0f} MB |")
    for task in results["tasks"]:
        lines += ["", f"## {task['task']}: per-frame latency ({task['rounds']} interleaved rounds)",
                  "", "| method | size | total median ms | total p95 ms | inference median ms |",
                  "|---|---:|---:|---:|---:|"]
        for row in task["latency"]:
            key = row["method"].split(" x")[0]
            size = task["sizes"].get(key) or (task["sizes"]["model.keras"]
                                              if row["method"].startswith("keras") else None)
            size_text = f"{size / 1024:.0f} KB" if size else "—"
            inference = f"{row['inference']['median_ms']:.3f}" if row["inference"] else "—"
            lines.append(f"| {row['method']} | {size_text} | {row['total']['median_ms']:.3f} | "
                         f"{row['total']['p95_ms']:.3f} | {inference} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="digits,fruits,handsigns",
                        help="comma-separated; tasks without a bundle are skipped")
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--rounds", type=int, default=200, help="interleaved latency rounds")
    parser.add_argument("--frames", type=int, default=150, help="frames in the footage video")
    parser.add_argument("--repeats", type=int, default=3, help="cold-start runs per program")
    parser.add_argument("--out", type=Path, default=REPO / "bench",
                        help="folder for results.md / results.json")
    args = parser.parse_args(argv)
    tasks = []
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        if not (args.artifacts / task / "bundle" / "metadata.json").is_file():
            print(f"{task}: no bundle in {args.artifacts / task}, skipped "
                  f"(make train export TASK={task})", file=sys.stderr)
            continue
        print(f"{task}: benchmarking ...", file=sys.stderr, flush=True)
        tasks.append(bench_task(task, args.artifacts, args.rounds, args.frames, args.repeats))
    if not tasks:
        print("error: no bundle found: run `make train TASK=digits && make export TASK=digits`",
              file=sys.stderr)
        return 2
    results = {"machine": machine(), "tasks": tasks}
    write_json(args.out / "results.json", results)
    markdown = render(results)
    write_text(args.out / "results.md", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
