"""Your own classes: image folders as a task, `device collect`, and the fast checks around them.

Everything here runs the real commands in real processes on real images; none trains a model
(the end-to-end path that does is tests/test_custom_e2e.py).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def run(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([PY, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def fruit_photos(data_dir: Path, fruit: str, prefix: str = "r0", count: int = 8) -> list[Path]:
    """``count`` photos of one rotation (one recording) of a Fruits-360 class, in frame order."""
    folder = data_dir / "fruits" / "Training" / fruit
    files = sorted(folder.glob(f"{prefix}_*.jpg"), key=lambda p: int(p.stem.split("_")[1]))
    step = max(1, len(files) // count)
    return files[::step][:count]


def copy_photos(paths: list[Path], folder: Path, names=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(paths):
        name = names[index] if names else path.name
        (folder / name).write_bytes(path.read_bytes())


def noise_video(path: Path, frames: int, size=(240, 320), seed: int = 0) -> Path:
    """Frames of fresh noise: every frame differs (no near-duplicates), nothing to recognise."""
    from device.footage import write_video

    rng = np.random.default_rng(seed)
    return write_video([rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(frames)],
                       path, fps=15)


# --- image folders as a task -------------------------------------------------------------------

def train_images(data: Path, name: str = "mine", *extra):
    """`python -m train images` in a process that reports whether TensorFlow got imported."""
    code = ("import sys\nfrom train.cli import main\n"
            f"rc = main(['images', '--data', {str(data)!r}, '--name', {name!r}, *{list(extra)!r}])\n"
            "print('TF_LOADED', 'tensorflow' in sys.modules)\nsys.exit(rc)")
    return run("-c", code)


def test_folder_problems_one_line_each_before_tensorflow(data_dir, tmp_path):
    photos = fruit_photos(data_dir, "Cherry 3", count=30)
    one_class = tmp_path / "one"
    copy_photos(photos[:10], one_class / "cherry")
    done = train_images(one_class)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "1 class folder" in lines[0]
    assert "TF_LOADED False" in done.stdout

    mixed = tmp_path / "mixed"
    copy_photos(photos[:3], mixed / "cherry")
    copy_photos(fruit_photos(data_dir, "Plum 5", count=1), mixed / "plum")
    (mixed / "cherry" / "broken.jpg").write_bytes(b"not a jpeg")
    (mixed / "cherry" / "empty.png").write_bytes(b"")
    done = train_images(mixed)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (f"warning: skipped 2 unreadable image file(s) (first: "
                        f"{mixed / 'cherry' / 'broken.jpg'}): they are empty or corrupt")
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == len(lines) - 1 == 3, lines
    assert "class 'cherry' has only 3 images" in errors[0]
    assert "class 'plum' has only 1 image:" in errors[1]
    assert "only 4 usable images" in errors[2]
    assert "TF_LOADED False" in done.stdout

    taken = train_images(one_class, "digits")
    assert taken.returncode == 2 and "taken by a built-in task" in taken.stderr


def collect_named(folder: Path, paths: list[Path], session: str) -> None:
    copy_photos(paths, folder, [f"{session}_{i + 1:04d}.jpg" for i in range(len(paths))])


def test_test_split_keeps_capture_sessions_whole_and_splits_one_session_by_time(data_dir,
                                                                                tmp_path):
    from train.data import folders

    data = tmp_path / "captures"
    # cherry: two sessions (two recordings of the fruit); plum: one session only.
    collect_named(data / "cherry", fruit_photos(data_dir, "Cherry 3", "r0", 10),
                  "20250101-100000-aaaa")
    collect_named(data / "cherry", fruit_photos(data_dir, "Cherry 3", "r1", 10),
                  "20250102-100000-bbbb")
    collect_named(data / "plum", fruit_photos(data_dir, "Plum 5", "r0", 10),
                  "20250101-110000-cccc")
    dataset = folders.load(data, "mine", 32, seed=3, quiet=True)
    split = dataset.split
    assert split["kind"] == "session" and split["by_time"] == ["plum"]
    assert split["sessions_from"] == {"collect name": 30}
    cherry_train = {g for g, y in zip(dataset.groups_train, dataset.y_train) if y == 0}
    assert len(cherry_train) == 1  # one session trains, the other is the test, whole
    assert int(np.sum(dataset.y_test == 0)) == 10 and int(np.sum(dataset.y_test == 1)) == 2
    # plum's test images are its last two frames: the same pixels as files 0009 and 0010.
    last = [folders.read_all([folders.ImageFile(data / "plum" / f"20250101-110000-cccc_{i:04d}"
                                                ".jpg", 1, "s", (i,))],
                             {"size": [32, 32], "colour": "rgb", "channels": 3,
                              "crop": "center_square"})[1][0] for i in (9, 10)]
    np.testing.assert_array_equal(dataset.x_test[dataset.y_test == 1], np.stack(last))
    assert any("split by time" in note for note in dataset.notes)

    # A manifest names the session even when the file names do not.
    renamed = tmp_path / "manifest"
    copy_photos(fruit_photos(data_dir, "Cherry 3", "r0", 6), renamed / "a", [f"a{i}.jpg"
                                                                             for i in range(6)])
    (renamed / "a" / "collect-s1.json").write_text(json.dumps(
        {"session": "s1", "files": [{"file": f"a{i}.jpg"} for i in range(3)]}))
    copy_photos(fruit_photos(data_dir, "Plum 5", "r0", 6), renamed / "b")
    scan = folders.scan(renamed)
    sessions = {f.path.name: f.session for f in scan.train if f.label == 0}
    assert {sessions[f"a{i}.jpg"] for i in range(3)} == {"s1"}
    assert sessions["a4.jpg"] == "a" and scan.sessions_from["manifest"] == 3


def test_given_train_test_layout_is_used_as_is(data_dir, tmp_path):
    from train.data import folders

    for split, prefix in (("train", "r0"), ("test", "r1")):
        copy_photos(fruit_photos(data_dir, "Cherry 3", prefix, 6), tmp_path / split / "cherry")
        copy_photos(fruit_photos(data_dir, "Plum 5", prefix, 6), tmp_path / split / "plum")
    dataset = folders.load(tmp_path, "mine", 32, quiet=True)
    assert dataset.split["kind"] == "given" and dataset.labels == ["cherry", "plum"]
    assert len(dataset.y_train) == 12 and len(dataset.y_test) == 12


def test_export_takes_a_user_task_name(tmp_path):
    done = run("-m", "export", "my_gestures", "--artifacts", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: no trained model in {tmp_path / 'my_gestures'}: run "
                                   "`python -m train images --data DIR --name my_gestures` first")


# --- device collect ----------------------------------------------------------------------------

def collect(*args, **kwargs):
    return run("-m", "device", "collect", "--headless", *args, **kwargs)


def test_collect_from_a_video_saves_raw_roi_with_a_manifest(data_dir, tmp_path):
    from device.camera import roi_for
    from device.footage import photo_in_scene, write_video

    rng = np.random.default_rng(0)
    photos = [cv2.imread(str(p)) for p in fruit_photos(data_dir, "Cherry 3", "r0", 6)]
    # Each photo held for 3 frames at 15 fps (0.2 s); then a still scene for 2 s.
    frames = [photo_in_scene(photo, rng) for photo in photos for _ in range(3)]
    frames += [frames[-1]] * 30
    video = write_video(frames, tmp_path / "cherry.avi", fps=15)
    done = collect("--label", "cherry", "--out", str(tmp_path / "out"), "--source", str(video),
                   "--count", "20", "--interval", "0.2", "--full-frame")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "cherry"
    manifest = json.loads(next(folder.glob("collect-*.json")).read_text())
    saved = manifest["files"]
    # Six photos, then the still scene: near-duplicates skipped, the video ends before 20.
    assert len(saved) == 6 and manifest["stopped"] == "source ended"
    assert manifest["skipped_near_duplicates"] >= 10
    assert [entry["frame"] for entry in saved] == [0, 3, 6, 9, 12, 15]
    roi = roi_for((480, 640), 0.6)
    for entry in saved:
        image = cv2.imread(str(folder / entry["file"]))
        assert image.shape == (roi.height, roi.width, 3)  # raw ROI pixels, not fitted
        assert entry["box"] == [roi.x, roi.y, roi.width, roi.height]
        assert cv2.imread(str(folder / entry["full"])).shape == (480, 640, 3)
    assert manifest["source"] == str(video) and manifest["settings"]["interval"] == 0.2
    assert sorted(p.name for p in folder.glob("*.jpg")) == sorted(e["file"] for e in saved)
    assert done.stdout.strip().startswith("collect: source ended: 6 image(s) of 'cherry'")


@pytest.mark.slow
def test_collect_uses_the_bundle_pipeline_geometry(quick_artifacts, data_dir, tmp_path):
    """With --bundle the ROI is the pipeline's own (for the ``crop`` step, snapped to a multiple
    of the model side; fruits' ``locate`` step searches inside it instead)."""
    from device.pipeline import FramePipeline

    bundle = quick_artifacts("fruits") / "fruits" / "bundle"
    video = noise_video(tmp_path / "noise.avi", 4, size=(480, 640))
    done = collect("--label", "x", "--out", str(tmp_path), "--source", str(video), "--count",
                   "2", "--interval", "0", "--bundle", str(bundle), "--roi", "0.55")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(next((tmp_path / "x").glob("collect-*.json")).read_text())
    expected = FramePipeline(bundle, roi="0.55")(np.zeros((480, 640, 3), np.uint8)).box
    assert manifest["files"][0]["box"] == list(expected)
    camera = json.loads((bundle / "metadata.json").read_text())["preprocessing"]["camera"]
    if camera == "crop":
        assert manifest["files"][0]["box"][2] % 64 == 0
    assert manifest["files"][0]["result"]["label"] in [*json.loads(
        (bundle / "metadata.json").read_text())["labels"], "unsure", "nothing"]


def test_collect_refuses_result_words_as_labels(tmp_path):
    done = collect("--label", "nothing", "--out", str(tmp_path), "--source", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --label 'nothing' is an answer of the runner, not a "
                                   "class: for 'nothing in view' use --label none")


def test_collect_ctrl_c_keeps_what_was_saved(tmp_path):
    video = noise_video(tmp_path / "noise.avi", 400)
    process = subprocess.Popen(
        [PY, "-m", "device", "collect", "--headless", "--label", "none", "--out",
         str(tmp_path / "out"), "--source", str(video), "--count", "400", "--interval", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = 0
    for line in process.stderr:
        progress += line.startswith("collect: none ")
        if progress == 5:
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    folder = tmp_path / "out" / "none"
    manifest = json.loads(next(folder.glob("collect-*.json")).read_text())
    assert manifest["stopped"] == "interrupted"
    assert 5 <= len(manifest["files"]) < 400
    on_disk = sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")
    assert on_disk == [entry["file"] for entry in manifest["files"]]
    assert all(cv2.imread(str(folder / name)) is not None for name in on_disk)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left
    assert "collect: interrupted:" in out


def test_collect_on_a_full_disk_stops_with_one_line_and_no_half_image(tmp_path):
    """A file-size limit (RLIMIT_FSIZE) makes writes fail like a full disk (EFBIG): the first
    frames are flat and small, the later ones noise whose JPEG no longer fits."""
    from device.footage import write_video

    rng = np.random.default_rng(1)
    flat = [np.full((240, 320, 3), 20 * i, np.uint8) for i in range(6)]
    noisy = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(6)]
    video = write_video(flat + noisy, tmp_path / "clip.avi", fps=15)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    done = subprocess.run(
        [PY, "-m", "device", "collect", "--headless", "--label", "a", "--out",
         str(tmp_path / "out"), "--source", str(video), "--count", "12", "--interval", "0",
         "--roi", "full", "--format", "png"],
        cwd=REPO, capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: disk full while writing ")
    assert "the 6 image(s) saved before are complete" in errors[0]
    folder = tmp_path / "out" / "a"
    manifest = json.loads(next(folder.glob("collect-*.json")).read_text())
    assert manifest["stopped"] == "disk full" and len(manifest["files"]) == 6
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == ".png")
    assert names == [entry["file"] for entry in manifest["files"]]
    assert all(cv2.imread(str(folder / n)) is not None for n in names)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_collect_from_an_image_folder_takes_every_image_whole(data_dir, tmp_path):
    photos = fruit_photos(data_dir, "Plum 5", "r0", 5)
    copy_photos(photos, tmp_path / "photos")
    done = collect("--label", "plum", "--out", str(tmp_path / "out"), "--source",
                   str(tmp_path / "photos"), "--countdown", "5", "--min-change", "0")
    assert done.returncode == 0, done.stderr
    saved = sorted((tmp_path / "out" / "plum").glob("*.jpg"))
    assert len(saved) == 5
    assert cv2.imread(str(saved[0])).shape == cv2.imread(str(photos[0])).shape


@pytest.mark.slow
def test_pretrained_weights_file_is_loaded_into_a_frozen_backbone(data_dir, tmp_path):
    """`--weights imagenet` downloads Keras' MobileNetV3-Small weights, which needs the
    internet (no package registry ships them), so its wiring is tested with a weights file made
    here: the same architecture, seeded, saved with save_weights. Training must start from
    exactly those weights and leave them untouched (only the head learns)."""
    import keras

    keras.utils.set_random_seed(7)
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None, include_preprocessing=True,
        pooling="avg", minimalistic=False)
    weights = tmp_path / "backbone.weights.h5"
    backbone.save_weights(weights)
    data = tmp_path / "data"
    copy_photos(fruit_photos(data_dir, "Cherry 3", count=12), data / "cherry")
    copy_photos(fruit_photos(data_dir, "Plum 5", count=12), data / "plum")
    done = run("-m", "train", "images", "--data", str(data), "--name", "wired", "--weights",
               str(weights), "--image-size", "32", "--epochs", "1", "--out", str(tmp_path / "a"),
               timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "a" / "wired" / "metrics.json").read_text())
    assert metrics["arch"] == "mobilenetv3small" and metrics["config"]["weights"] == str(weights)
    import train.models  # noqa: F401 - registers the custom layers

    model = keras.models.load_model(tmp_path / "a" / "wired" / "model.keras", compile=False)
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert len(inner) == 1 and not inner[0].trainable
    trained, original = inner[0].get_weights(), backbone.get_weights()
    assert len(trained) == len(original)
    for after, before in zip(trained, original):
        np.testing.assert_array_equal(after, before)


def test_collect_hands_keeps_frames_with_a_hand_and_their_landmarks(data_dir, tmp_path):
    """--hands: MediaPipe's models find the hand (no bundle needed); frames without one are
    skipped; each saved image gets its hand crop and the landmarks in the manifest."""
    import hand_models
    from device.footage import write_video
    from device.hands.clips import photo_anywhere, scene

    try:
        hand_models.model_path("palm", "full")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"hand models not available ({exc}): python -m hand_models fetch")
    rng = np.random.default_rng(3)
    hands = sorted((data_dir / "handsigns" / "training" / "scissors").glob("*.jpg"))[:64:8]
    frames = []
    for path in hands:
        frames.append(np.clip(scene(rng), 0, 255).astype(np.uint8))  # nobody in view
        frames.append(photo_anywhere(cv2.imread(str(path)), rng, sizes=(0.6, 0.9))[0])
    video = write_video(frames, tmp_path / "hands.avi", fps=15)
    done = collect("--hands", "--label", "scissors", "--out", str(tmp_path / "out"), "--source",
                   str(video), "--count", "10", "--interval", "0", "--min-change", "0")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "scissors"
    manifest = json.loads(next(folder.glob("collect-*.json")).read_text())
    saved = manifest["files"]
    assert manifest["skipped_no_subject"] >= len(hands)  # every empty scene, at least
    assert len(hands) // 2 <= len(saved) <= len(hands)
    assert all(entry["frame"] % 2 == 1 for entry in saved)  # only the frames with a hand
    for entry in saved:
        assert len(entry["hand"]["landmarks"]) == 21
        assert entry["box"] == [0, 0, 640, 480]  # hands are searched in the whole frame
        assert cv2.imread(str(folder / entry["hand_crop"])).shape == (224, 224, 3)


def test_api_names_a_frame_that_was_not_read():
    from device.api import check_frame
    from device.errors import UserError

    with pytest.raises(UserError, match="got None instead of a frame"):
        check_frame(cv2.imread("/no/such/photo.jpg"))
    with pytest.raises(UserError, match=r"got \(4, 4, 2\)"):
        check_frame(np.zeros((4, 4, 2), np.uint8))
    check_frame(np.zeros((4, 4, 3), np.uint8))
