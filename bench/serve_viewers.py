"""What watching costs: the runner's unthrottled throughput under ``serve`` with 0, 1 and 3
viewers of the MJPEG stream.

Each round is a fresh ``python -m device serve --fast --loop`` on a 640x480 video (the bundle's
sample images as a camera sees them, unless ``--video``). Within it, short windows cycle through
the viewer counts in a shuffled order, each with N ``curl`` processes reading ``/stream.mjpg``
(separate processes, as browsers are): the frame counter of ``/api/result`` read at both ends of
the window gives frames / second, and the serve process's CPU time per frame says what the
viewers cost in work. Windows interleave, so a busy machine's noise falls on every count alike;
medians are reported, with the 1-minute load average seen.

    python bench/serve_viewers.py --bundle artifacts/digits/bundle [--rounds 3] [--cycles 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def result(url: str) -> dict:
    with urllib.request.urlopen(url + "api/result", timeout=30) as response:
        return json.loads(response.read())


def wait_result(url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return result(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def window(url: str, pid: int, viewers: int, seconds: float, settle: float) -> dict:
    """One measurement window with ``viewers`` curl processes reading the stream."""
    watchers = [subprocess.Popen(["curl", "-sN", "-o", os.devnull, url + "stream.mjpg"])
                for _ in range(viewers)]
    try:
        time.sleep(settle)
        first, cpu, started = result(url)["frame"], cpu_seconds(pid), time.monotonic()
        load_before = os.getloadavg()[0]
        time.sleep(seconds)
        last, cpu_end, finished = result(url)["frame"], cpu_seconds(pid), time.monotonic()
    finally:
        for watcher in watchers:
            watcher.terminate()
            watcher.wait(30)
    frames = last - first
    return {"viewers": viewers, "fps": frames / (finished - started),
            "cpu_ms_per_frame": 1000 * (cpu_end - cpu) / max(frames, 1),
            "load": (load_before + os.getloadavg()[0]) / 2}


def measure(bundle: Path, video: Path, counts: list[int], cycles: int, seconds: float,
            warmup: float, rng: random.Random) -> list[dict]:
    """One serve process; ``cycles`` times each viewer count in a shuffled order."""
    serve = subprocess.Popen([sys.executable, "-m", "device", "serve", "--bundle", str(bundle),
                              "--source", str(video), "--port", "0", "--fast", "--loop"],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        url = next(line.split()[1] for line in serve.stderr if line.startswith("serving "))
        wait_result(url)
        time.sleep(warmup)
        windows = []
        for _ in range(cycles):
            order = list(counts)
            rng.shuffle(order)
            windows += [window(url, serve.pid, n, seconds, 1.0) for n in order]
        return windows
    finally:
        serve.terminate()
        serve.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--video", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=3, help="windows per count per round")
    parser.add_argument("--seconds", type=float, default=5.0, help="one window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--viewers", default="0,1,3")
    args = parser.parse_args()
    counts = [int(v) for v in args.viewers.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        video = args.video
        if video is None:
            sys.path.insert(0, str(REPO))
            from device.bench import sample_footage
            from device.bundle import open_bundle
            video = sample_footage(open_bundle(args.bundle), Path(folder), frames=600)
        rng = random.Random(0)
        runs = [w for _ in range(args.rounds)
                for w in measure(args.bundle, video, counts, args.cycles, args.seconds,
                                 args.warmup, rng)]
    for run in runs:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                          for k, v in run.items()}), file=sys.stderr)
    base = statistics.median(r["fps"] for r in runs if r["viewers"] == counts[0])
    base_cpu = statistics.median(r["cpu_ms_per_frame"] for r in runs
                                 if r["viewers"] == counts[0])
    windows = len(runs) // len(counts)
    print(f"| viewers | runner fps (median of {windows} windows) | vs {counts[0]} | "
          f"CPU ms per frame (median) | vs {counts[0]} | load average (1 min, min-max) |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        mine = [r for r in runs if r["viewers"] == n]
        fps = statistics.median(r["fps"] for r in mine)
        cpu = statistics.median(r["cpu_ms_per_frame"] for r in mine)
        loads = [r["load"] for r in mine]
        print(f"| {n} | {fps:.0f} | {100 * (fps / base - 1):+.1f} % | {cpu:.2f} | "
              f"{100 * (cpu / base_cpu - 1):+.1f} % | {min(loads):.1f}-{max(loads):.1f} |")


if __name__ == "__main__":
    main()
