"""A user's own hand gestures: 30 captures per gesture -> landmark classifier -> bundle -> run.

Rock, paper and scissors stand in for a user's own gestures. A video per gesture shows randomly
drawn training photos (each held 0.2 s, anywhere in a scene); `device collect --hands` keeps
the first 30 frames where a hand is found; `train images --arch landmarks` trains the hand-sign
landmark classifier on them; `export` bundles it; `device run` classifies the 270 test photos,
a photo without a hand counting as an error. bench/custom_gestures.py runs three draws.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
GESTURES = ("rock", "paper", "scissors")
#: The whole 270-photo test set, through the device: measured over three draws in
#: bench/custom_gestures.py (83-87 %, mean 85.8 %); the full 1,877-photo model reaches 93.7 %, so
#: a floor well above chance and near that ceiling shows 30 captures per gesture suffice.
FLOOR = 0.75


def run(*args, timeout=900, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def gesture_video(data_dir: Path, gesture: str, draw: int, folder: Path, photos: int = 60):
    """``photos`` random training photos of ``gesture`` (seeded by ``draw``), each held for
    three frames at 15 fps, pasted anywhere in a scene at half to nine tenths of its height."""
    import cv2

    from device.footage import write_video
    from device.hands.clips import photo_anywhere

    rng = np.random.default_rng(1000 * draw + GESTURES.index(gesture))
    files = sorted((data_dir / "handsigns" / "training" / gesture).glob("*.jpg"))
    frames = []
    for index in rng.choice(len(files), photos, replace=False):
        frame, _ = photo_anywhere(cv2.imread(str(files[index])), rng, sizes=(0.5, 0.9))
        frames += [frame] * 3
    return write_video(frames, folder / f"{gesture}.avi", fps=15)


def gesture_accuracy(data_dir: Path, draw: int, root: Path, env: dict) -> dict:
    """One draw, end to end; returns accuracy on the 270 test photos and the timings."""
    captures, artifacts = root / "captures", root / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    for gesture in GESTURES:
        video = gesture_video(data_dir, gesture, draw, root)
        done = run("-m", "device", "collect", "--headless", "--hands", "--label", gesture,
                   "--out", str(captures), "--source", str(video), "--count", "30", env=env)
        assert f"done: 30 image(s) of '{gesture}'" in done.stdout
    started = time.monotonic()
    run("-m", "train", "images", "--data", str(captures), "--name", "my_gestures", "--arch",
        "landmarks", "--out", str(artifacts), env=env)
    trained = time.monotonic()
    run("-m", "export", "my_gestures", "--artifacts", str(artifacts), "--latency-runs", "5",
        env=env)
    exported = time.monotonic()
    photos = root / "test_photos"  # the 270 test photos in one folder, named <class>.*.jpg
    photos.mkdir()
    for gesture in GESTURES:
        for path in (data_dir / "handsigns" / "testing" / gesture).glob("*.jpg"):
            (photos / path.name).symlink_to(path)
    done = run("-m", "device", "run", "--bundle", str(artifacts / "my_gestures" / "bundle"),
               "--source", str(photos), "--headless", env=env)
    records = [json.loads(line) for line in done.stdout.splitlines()]
    truth = [r["source"].split(".")[0] for r in records]
    return {"photos": len(records),
            "accuracy": float(np.mean([r["label"] == t for r, t in zip(records, truth)])),
            "no_hand": sum(r["reason"] == "no_hand" for r in records),
            "train_s": trained - started, "export_s": exported - trained,
            "hand_crops": len(list((captures / "rock" / "hand").glob("*.png"))),
            "manifest": json.loads(next((captures / "rock").glob("collect-*.json")).read_text())}


def hand_env(tmp_path: Path) -> dict:
    import hand_models

    try:
        hand_models.model_path("palm", "full")
    except Exception as exc:  # noqa: BLE001 - not fetched: the tests that need them say so
        pytest.skip(f"hand models not available ({exc}): python -m hand_models fetch")
    env = dict(os.environ)
    env.setdefault("EDGEKIT_LANDMARK_CACHE", str(tmp_path / "landmarks"))
    return env


def test_thirty_captures_per_gesture_train_export_and_run(data_dir, tmp_path):
    result = gesture_accuracy(data_dir, 0, tmp_path / "draw0", hand_env(tmp_path))
    print(f"own gestures, draw 0: {result['accuracy']:.2%} of {result['photos']} test photos "
          f"({result['no_hand']} without a hand); train {result['train_s']:.0f} s, export "
          f"{result['export_s']:.0f} s")
    assert result["photos"] == 270
    assert result["accuracy"] >= FLOOR
    assert result["hand_crops"] == 30
    entry = result["manifest"]["files"][0]
    assert len(entry["hand"]["landmarks"]) == 21 and entry["hand_crop"].startswith("hand/")
