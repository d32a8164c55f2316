"""The device runner end to end on footage built from real test images, headless.

How the footage is built (device/footage.py): digits from the MNIST test split are drawn as
dark ink on light paper (paper tone 200-245, ink 20-70, random position inside the centre box)
under a lighting gradient and vignette in 640x480 frames, with Gaussian sensor noise and JPEG
compression; fruit photos and hand-sign photos from the test splits are scaled into the centre
box of a 640x480 blurred, unevenly lit scene with noise and JPEG. The hand-sign photos are also
used as they are, as an image folder.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.footage import (
    digit_on_paper,
    hand_photo_in_scene,
    photo_in_scene,
    write_folder,
    write_video,
)
from device.runner import Runner, RunOptions
from train.data import load_dataset

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FOOTAGE_IMAGES = 300


def run_headless(bundle: Path, source: Path, **options) -> list[dict]:
    out = io.StringIO()
    Runner(RunOptions(bundle=bundle, source=str(source), headless=True, **options), out=out).run()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def accuracy(records: list[dict], labels: list[str], y: np.ndarray, key: str = "label"):
    return float(np.mean([r[key] == labels[t] for r, t in zip(records, y)]))


def seeded_subset(y: np.ndarray, count: int, seed: int = 7) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(len(y))[:count])


@pytest.fixture(scope="module")
def digits_setup(quick_artifacts, data_dir):
    bundle = quick_artifacts("digits") / "digits" / "bundle"
    data = load_dataset("digits", data_dir, 28)
    pick = seeded_subset(data.y_test, FOOTAGE_IMAGES)
    rng = np.random.default_rng(11)
    frames = [digit_on_paper(data.x_test[i, :, :, 0], rng) for i in pick]
    return bundle, frames, data.y_test[pick], data.labels


def test_digits_on_paper_video_at_least_95_percent(digits_setup, tmp_path):
    bundle, frames, y, labels = digits_setup
    video = write_video(frames, tmp_path / "digits.avi")
    records = run_headless(bundle, video, smoothing=False)
    assert len(records) == len(y)
    assert {"frame", "source", "label", "score", "latency_ms"} <= set(records[0])
    assert records[0]["source"] == "digits.avi"
    score = accuracy(records, labels, y)
    print(f"digits footage accuracy: {score:.3f} on {len(y)} frames")
    assert score >= 0.95


def test_digits_image_folder_reports_file_names(digits_setup, tmp_path):
    bundle, frames, y, labels = digits_setup
    names = [f"{i:04d}_{labels[t]}.jpg" for i, t in enumerate(y[:60])]
    folder = write_folder(frames[:60], tmp_path / "shots", names)
    records = run_headless(bundle, folder)
    assert [r["source"] for r in records] == sorted(names)
    # No smoothing across unrelated photos: what the user sees is each photo's own answer.
    assert all(r["label"] == r["raw_label"] for r in records)
    assert accuracy(records, labels, y[:60]) >= 0.9


def test_smoothing_reports_a_stable_label(digits_setup, tmp_path):
    """A digit held for 8 frames: the smoothed label settles on it."""
    bundle, frames, y, labels = digits_setup
    held = [frame for frame in frames[:10] for _ in range(8)]
    records = run_headless(bundle, write_video(held, tmp_path / "held.avi"), smoothing=True)
    settled = [records[i * 8 + 7]["label"] for i in range(10)]
    assert np.mean([s == labels[t] for s, t in zip(settled, y[:10])]) >= 0.8


#: Hand signs: these photos are tight crops (the wrist cut at the edge), pasted into a scene,
#: which the palm detector rarely finds; issue 13's target for camera-like footage is 0.93.
#: Measured with the landmark bundle: see the value printed. A regression guard below it.
FOOTAGE_FLOOR = {"handsigns": 0.65}
ANYWHERE_FLOOR = 0.7


@pytest.mark.parametrize("task", ["fruits", "handsigns"])
def test_photos_scaled_into_larger_frames(task, quick_artifacts, data_dir, tmp_path):
    """Footage accuracy stays close to the bundle's test-split accuracy."""
    root = quick_artifacts(task) / task
    bundle = root / "bundle"
    metadata = json.loads((bundle / "metadata.json").read_text())
    test_dir = {"fruits": data_dir / "fruits" / "Test",
                "handsigns": data_dir / "handsigns" / "testing"}[task]
    labels = metadata["labels"]
    folders = {label.lower(): p for p in test_dir.iterdir() for label in labels
               if p.name.lower() == label.lower()}
    paths, y = [], []
    for index, label in enumerate(labels):
        files = sorted(folders[label.lower()].glob("*.jpg"))
        for path in files[:: max(1, len(files) // 15)][:15]:
            paths.append(path)
            y.append(index)
    rng = np.random.default_rng(5)
    photos = [cv2.imread(str(p)) for p in paths]
    side = metadata["preprocessing"]["size"][0]
    video = write_video([photo_in_scene(photo, rng, model_side=side) for photo in photos],
                        tmp_path / "v.avi")
    records = run_headless(bundle, video, smoothing=False)
    expected = metadata["models"][0]["test_accuracy"]
    score = accuracy(records, labels, np.array(y))
    print(f"{task} footage accuracy {score:.3f} (bundle test accuracy {expected:.3f})")
    assert score >= min(expected - 0.12, FOOTAGE_FLOOR.get(task, 1.0))
    if task == "handsigns":  # the photos are webcam crops already: as they are, full ROI
        folder = write_folder(photos, tmp_path / "as_is", [f"{i:03d}.jpg" for i in range(len(y))])
        as_is = accuracy(run_headless(bundle, folder), labels, np.array(y))
        assert as_is >= expected - 0.12
        # The camera-like footage: each photo 1/4 to 3/4 of the frame tall, anywhere in
        # a 640x480 scene (device.footage.hand_photo_in_scene), as stills. Target 0.93; the
        # floor guards what is built (quick model, these 45 photos: 0.844 with the scan turned
        # and refined; 0.66-0.69 before, with upright windows taken as they are).
        scenes = [hand_photo_in_scene(photo, rng)[0] for photo in photos]
        anywhere = accuracy(run_headless(bundle, write_folder(
            scenes, tmp_path / "anywhere", [f"{i:03d}.jpg" for i in range(len(y))])),
            labels, np.array(y))
        print(f"handsigns anywhere-footage accuracy {anywhere:.3f}")
        assert anywhere >= ANYWHERE_FLOOR


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "device", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_headless_json_lines_and_save(digits_setup, tmp_path):
    bundle, frames, y, labels = digits_setup
    video = write_video(frames[:20], tmp_path / "short.avi")
    saved = tmp_path / "annotated.avi"
    result = run_cli("run", "--bundle", str(bundle), "--source", str(video), "--headless",
                     "--save", str(saved), "--model", "onnx-int8", "--threads", "1")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 20 and lines[0]["model"] == "onnx-int8"
    assert {"label", "reason", "raw_label", "top", "box", "guess"} <= set(lines[0])
    capture = cv2.VideoCapture(str(saved))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20


def test_device_never_imports_tensorflow(quick_artifacts, tmp_path):
    bundle = quick_artifacts("digits") / "digits" / "bundle"
    frames = [np.full((480, 640, 3), 220, np.uint8)] * 3
    video = write_video(frames, tmp_path / "blank.avi")
    code = f"""
import io, sys
from device.cli import main
for command in (["run", "--bundle", {str(bundle)!r}, "--source", {str(video)!r}, "--headless"],
                ["check", "--bundle", {str(bundle)!r}]):
    main(command)
for model in ("onnx-int8", "tflite-fp32"):
    main(["run", "--bundle", {str(bundle)!r}, "--source", {str(video)!r}, "--headless",
          "--model", model])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
print("HEAVY", heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout[-500:]


def test_check_passes_on_a_good_bundle_and_fails_on_a_broken_one(quick_artifacts, tmp_path):
    import shutil

    bundle = quick_artifacts("digits") / "digits" / "bundle"
    result = run_cli("check", "--bundle", str(bundle))
    assert result.returncode == 0 and "check: ok" in result.stdout, result.stdout + result.stderr
    broken = tmp_path / "bundle"
    shutil.copytree(bundle, broken)
    model = broken / "model_int8.tflite"
    model.write_bytes(model.read_bytes()[:-64])
    result = run_cli("check", "--bundle", str(broken))
    assert result.returncode == 2 and "checksum mismatch" in result.stderr


@pytest.mark.parametrize("case, message", [
    ("missing", "no bundle at"),
    ("not-json", "is not valid JSON"),
    ("old-version", "bundle format 0"),
    ("bad-camera", "no camera at index 9"),
    ("bad-video", "cannot read video"),
    ("empty-folder", "has no images"),
    ("unknown-model", "--model tflite-int4 is not in bundle"),
])
def test_bad_input_is_one_line_and_non_zero(case, message, quick_artifacts, tmp_path):
    import shutil

    good = quick_artifacts("digits") / "digits" / "bundle"
    bundle, source, extra = good, str(tmp_path), []
    if case == "missing":
        bundle = tmp_path / "nothing"
    elif case in ("not-json", "old-version"):
        bundle = tmp_path / "bundle"
        shutil.copytree(good, bundle)
        metadata = json.loads((bundle / "metadata.json").read_text())
        metadata["bundle_format"] = 0
        text = "{broken" if case == "not-json" else json.dumps(metadata)
        (bundle / "metadata.json").write_text(text)
    elif case == "bad-camera":
        source = "9"
    elif case == "bad-video":
        source = str(tmp_path / "x.mp4")
        Path(source).write_bytes(b"nope")
    elif case == "empty-folder":
        source = str(tmp_path / "empty")
        Path(source).mkdir()
    elif case == "unknown-model":
        extra = ["--model", "tflite-int4"]
    result = run_cli("run", "--bundle", str(bundle), "--source", source, "--headless", *extra,
                     timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
