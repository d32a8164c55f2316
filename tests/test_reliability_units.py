"""Reliability cases that need no trained model (issue 14): file modes, parse-time validation,
sources that end wrongly, blank and transparent frames, training data refused before TensorFlow
loads, the calibration set keyed by its training data, and the release bookkeeping on a target.

Each test failed before the change it names and passes after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def run_module(*args: str, cwd: Path = REPO, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, **kwargs)


def assert_one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, no traceback, and an ``error:`` line holding every needle."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("error:") or ": error: " in line]
    assert errors, result.stderr
    for needle in needles:
        assert needle in errors[-1], errors[-1]
    return errors[-1]


# --- 3. ordinary file modes ---------------------------------------------------------------------

def test_atomic_writes_and_staging_folders_respect_the_umask(tmp_path):
    from device.atomic import atomic_path, make_temp_dir, write_json

    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "meta.json", {"a": 1})
        with atomic_path(tmp_path / "model.keras", suffix=".keras") as tmp:
            tmp.write_bytes(b"x")
        staging = make_temp_dir(tmp_path, ".staging-")
    finally:
        os.umask(previous)
    assert (tmp_path / "meta.json").stat().st_mode & 0o777 == 0o644  # was 0600
    assert (tmp_path / "model.keras").stat().st_mode & 0o777 == 0o644
    assert staging.stat().st_mode & 0o777 == 0o755  # was 0700
    os.umask(0o077)
    try:
        write_json(tmp_path / "private.json", {})
    finally:
        os.umask(previous)
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600  # a strict umask holds


def test_stale_staging_of_a_dead_process_is_swept_and_a_live_one_kept(tmp_path):
    from device.atomic import owned_temp_dir, sweep_stale

    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()
    (tmp_path / f".bundle-staging-{dead.pid}-abc").mkdir()
    mine = owned_temp_dir(tmp_path, ".bundle-staging-")
    removed = sweep_stale(tmp_path, ".bundle-staging-")
    assert [p.name for p in removed] == [f".bundle-staging-{dead.pid}-abc"]
    assert mine.is_dir()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_that_library_code_turns_into_another_error_is_still_an_interrupt(signum):
    """CI stop 24: a SIGTERM while TensorFlow traced a SavedModel came out as TensorFlow's own
    error, not KeyboardInterrupt, so export printed a traceback and exited 1."""
    from device.interrupts import terminate_as_interrupt

    def library_call_that_swallows_the_interrupt():
        try:
            os.kill(os.getpid(), signum)
            time.sleep(1)
        except KeyboardInterrupt:
            raise RuntimeError("graph building failed") from None

    # What a terminal's Python has (a background job's would ignore SIGINT).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        with pytest.raises(KeyboardInterrupt):
            with terminate_as_interrupt():
                library_call_that_swallows_the_interrupt()
        assert {s: signal.getsignal(s) for s in before} == before  # handlers restored
    finally:
        signal.signal(signal.SIGINT, outer)
    with pytest.raises(RuntimeError):  # without a signal, an error stays itself
        with terminate_as_interrupt():
            raise RuntimeError("a real failure")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_that_library_code_swallows_still_stops_the_irreversible_step(signum, tmp_path):
    """CI stop 29: a SIGINT in an export's first seconds vanished (a bare ``except:`` somewhere
    in library code), and the export published its bundle and exited 0."""
    from device.interrupts import raise_if_interrupted, terminate_as_interrupt
    from export.exporter import swap_in

    def library_call_that_swallows_the_interrupt():
        try:
            os.kill(os.getpid(), signum)
            time.sleep(1)
        except BaseException:  # noqa: BLE001 - what the library does
            pass

    staging, bundle = tmp_path / ".bundle-staging-1", tmp_path / "bundle"
    staging.mkdir()
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with terminate_as_interrupt():
                library_call_that_swallows_the_interrupt()
                swap_in(staging, bundle)
    finally:
        signal.signal(signal.SIGINT, outer)
    assert staging.is_dir() and not bundle.exists()
    raise_if_interrupted()  # outside any block: nothing to raise
    with terminate_as_interrupt():  # a new block starts clean
        raise_if_interrupted()


def test_a_signal_that_lands_in_a_destructor_is_delivered_again():
    """A signal handled inside ``__del__`` (TensorFlow's garbage collector of concrete
    functions, measured) is printed as "Exception ignored" and dropped by Python: the export
    then finished as if never interrupted. It must come again and stop the block, silently."""
    from device.interrupts import terminate_as_interrupt

    class Collected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the handler runs here, inside the destructor

    with pytest.raises(KeyboardInterrupt):
        with terminate_as_interrupt():
            Collected()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.01)


# --- 6. options range-checked at parse time ----------------------------------------------------

@pytest.mark.parametrize("flag,value", [("--threshold", "2"), ("--threshold", "-1"),
                                        ("--alpha", "5"), ("--alpha", "0"),
                                        ("--threads", "0"), ("--fps", "-3")])
def test_device_run_options_are_range_checked_at_parse_time(flag, value, tmp_path):
    result = run_module("device", "run", "--bundle", str(tmp_path), "--source", str(tmp_path),
                        "--headless", flag, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {flag}" in result.stderr


def test_threads_are_capped_at_four_times_the_cores(capsys):
    from device.cli import MAX_THREADS_PER_CORE, thread_count

    assert thread_count("2") == 2
    assert thread_count("1000") == MAX_THREADS_PER_CORE * os.cpu_count()
    assert "--threads 1000" in capsys.readouterr().err


def test_train_options_and_data_refused_before_tensorflow_loads(tmp_path):
    """--epochs 0, a one-class dataset and an empty class folder: one line naming the flag, and
    TensorFlow never imported (it took 8-13 s to load before the error)."""
    rng = np.random.default_rng(0)
    one_class = tmp_path / "one" / "fruits"
    empty = tmp_path / "empty" / "fruits"
    for root, classes in ((one_class, ["Apple"]), (empty, ["Apple", "Pear"])):
        for split in ("Training", "Test"):
            for name in classes:
                folder = root / split / name
                folder.mkdir(parents=True)
                if root == empty and name == "Pear" and split == "Training":
                    continue
                for i in range(3):
                    cv2.imwrite(str(folder / f"{i}.png"),
                                rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    probe = ("import sys; from train.cli import main; rc = main(sys.argv[1:]); "
             "print('tf-loaded' if 'tensorflow' in sys.modules else 'tf-not-loaded'); "
             "sys.exit(rc)")
    cases = {"--epochs": ["digits", "--embedded", "--epochs", "0"],
             "--data-dir": ["fruits", "--data-dir", str(one_class.parent)],
             "empty": ["fruits", "--data-dir", str(empty.parent)]}
    for name, args in cases.items():
        result = subprocess.run([PY, "-c", probe, *args], cwd=REPO, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "tf-loaded" not in result.stdout, name
        if name == "empty":
            assert "Pear" in result.stderr and "no images" in result.stderr
        elif name == "--epochs":
            assert "argument --epochs" in result.stderr
        else:
            assert "--data-dir" in result.stderr and "at least two" in result.stderr


# --- 5. blank, black, saturated and transparent frames -----------------------------------------

def test_black_white_and_flat_frames_are_blank_for_every_camera_mode():
    from device.camera import FramePreprocessor
    from device.result import BLANK_FRAME, NO_INK
    from device.tasks import TASKS

    rng = np.random.default_rng(0)
    frames = {"black": np.zeros((480, 640, 3), np.uint8),
              "noisy black": rng.integers(0, 6, (480, 640, 3)).astype(np.uint8),
              "white": np.full((480, 640, 3), 255, np.uint8),
              "grey wall": np.full((480, 640, 3), 128, np.uint8)}
    for task in ("digits", "fruits"):
        step = FramePreprocessor(TASKS[task].preprocessing(), 0.6)
        for name, frame in frames.items():
            pixels, _ = step.pixels(frame)
            # Lit, featureless paper is the digit step's "no ink"; every other case is blank.
            paper = task == "digits" and name in ("white", "grey wall")
            assert pixels is None and step.reason == (NO_INK if paper else BLANK_FRAME), \
                (task, name)


def test_a_black_frame_is_not_ink():
    """The light-flattening step divided by a 0 background and called every pixel ink."""
    from device.camera import mnistify

    dark = np.random.default_rng(1).integers(0, 30, (288, 288, 3)).astype(np.uint8)
    assert mnistify(dark) is None


def test_transparent_pixels_are_composited_onto_white(tmp_path):
    """A PNG whose ink is only in the alpha channel (colour all black) reads as dark ink on white
    paper, not as an all-black frame."""
    from device.sources.folder import decode_image

    alpha = np.zeros((100, 100), np.uint8)
    cv2.line(alpha, (30, 20), (70, 80), 255, 8)
    bgra = np.dstack([np.zeros((100, 100, 3), np.uint8), alpha])
    cv2.imwrite(str(tmp_path / "ink.png"), bgra)
    frame = decode_image(tmp_path / "ink.png")
    assert frame.shape == (100, 100, 3)
    assert frame[0, 0].tolist() == [255, 255, 255]  # transparent -> white paper
    assert frame[50, 50].tolist() == [0, 0, 0]      # opaque black ink stays ink


# --- 6./7. sources that end wrongly, bad paths -------------------------------------------------

def test_folder_run_skips_undecodable_images_and_counts_them(tmp_path, capsys):
    from device.sources import open_source

    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 40, 3), 200, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"")                   # zero bytes
    (tmp_path / "c.jpg").write_bytes(b"not a jpeg at all")  # corrupt
    (tmp_path / "d.jpg").mkdir()                            # a folder named like an image
    cv2.imwrite(str(tmp_path / "e.png"), np.full((40, 40, 3), 100, np.uint8))
    source = open_source(str(tmp_path))
    names = []
    while (item := source.read()) is not None:
        names.append(item[1])
    assert names == ["a.png", "e.png"]
    assert "skipping" in capsys.readouterr().err
    assert "2 of 4 images" in source.problem()


def test_a_zero_byte_image_as_source_is_one_clear_error(tmp_path):
    from device.sources import open_source

    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="cannot decode it as an image"):
        open_source(str(tmp_path / "x.jpg"))


def write_numbered_video(path: Path, frames: int) -> Path:
    from device.footage import write_video

    rng = np.random.default_rng(0)
    return write_video((rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
                        for _ in range(frames)), path)


def test_a_truncated_video_says_so(tmp_path):
    from device.sources.video import VideoFileSource

    video = write_numbered_video(tmp_path / "clip.avi", 300)
    whole = VideoFileSource(video)
    while whole.read() is not None:
        pass
    whole.close()
    assert whole.frames_read == 300 and whole.problem() is None
    data = video.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 2 // 5])
    cut = VideoFileSource(tmp_path / "cut.avi")
    while cut.read() is not None:
        pass
    cut.close()
    assert cut.frames_read < 300
    assert f"ended after {cut.frames_read} of its 300 frames" in cut.problem()


def test_the_decode_thread_starts_only_with_the_first_read(tmp_path):
    """A start-up error between opening a video and the first frame must not leave a decoder
    thread inside OpenCV at exit (it aborted with 'FATAL: exception not rethrown')."""
    from device.sources.video import VideoFileSource

    source = VideoFileSource(write_numbered_video(tmp_path / "clip.avi", 20))
    assert source._thread is None
    source.read()
    assert source._thread is not None
    source.close()


def test_a_roi_outside_the_frame_is_refused_not_clamped():
    from device.camera import Roi, roi_for

    assert roi_for((480, 640, 3), (10, 20, 100, 50)) == Roi(10, 20, 100, 50)
    for roi in ((600, 400, 100, 100), (700, 10, 10, 10), (0, 0, 641, 480)):
        with pytest.raises(UserError, match="--roi .* does not fit the 640x480 frame"):
            roi_for((480, 640, 3), roi)


# --- 7. malformed metadata and metrics ----------------------------------------------------------

def test_malformed_metrics_json_is_one_line(tmp_path):
    from export.source import load_trained

    folder = tmp_path / "digits"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"x")
    for text, needle in (('{"labels": ["a", "b"', "not valid JSON"),
                         ("[1, 2]", "not a JSON object"),
                         ('{"labels": "ab", "preprocessing": {"size": [28, 28]}}', "'labels'"),
                         ('{"labels": ["a", "b"], "preprocessing": {}}', "'preprocessing'")):
        (folder / "metrics.json").write_text(text)
        with pytest.raises(UserError, match=needle):
            load_trained(tmp_path, "digits")


def test_export_cli_corrupt_metrics_is_one_line(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"x")
    (folder / "metrics.json").write_text("{truncated")
    result = run_module("export", "digits", "--artifacts", str(tmp_path))
    assert_one_error_line(result, "metrics.json", "not valid JSON")


# --- 4. the calibration set belongs to its model ----------------------------------------------

def test_calibration_set_from_other_training_data_is_rebuilt(tmp_path, capsys):
    """The demo (scikit-learn's 8x8 digits) and the real MNIST export share task, labels and
    preprocessing: the old check reused the demo's set for MNIST silently."""
    from types import SimpleNamespace

    import calibration_data
    from device.tasks import TASKS
    from export.exporter import calibration_inputs

    spec = TASKS["digits"].preprocessing()
    labels = [str(d) for d in range(10)]
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20)

    def dataset(source, level):
        return SimpleNamespace(x_train=np.full((200, 28, 28, 1), level, np.uint8) +
                               rng.integers(0, 3, (200, 28, 28, 1)).astype(np.uint8),
                               y_train=y, labels=labels, source=source)

    demo, mnist = dataset("scikit-learn digits (embedded)", 10), dataset("/data/digits", 200)
    trained = SimpleNamespace(task="digits", spec=spec, labels=labels, folder=tmp_path / "digits")
    first = calibration_inputs(trained, demo, 100, 0)
    assert (tmp_path / "digits" / "calibration" / "digits.npz").is_file()  # beside the model
    again = calibration_inputs(trained, demo, 100, 0)
    assert "other training data" not in capsys.readouterr().out
    np.testing.assert_array_equal(first, again)
    real = calibration_inputs(trained, mnist, 100, 0)
    assert "drawn from other training data" in capsys.readouterr().out
    assert real.mean() > 0.5 > first.mean()  # built from MNIST's images, not the demo's
    manifest = calibration_data.load("digits", spec, labels, tmp_path / "digits" / "calibration")[2]
    assert manifest["data"]["source"] == "/data/digits"


# --- 2. releases on a target: good marks, prune, previous, leftovers ---------------------------

def remote(base: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(REPO / "deploy" / "remote.sh"), args[0], str(base),
                           *args[1:]], capture_output=True, text=True, timeout=60)


def make_release(base: Path, name: str, good: bool) -> None:
    folder = base / "releases" / name
    folder.mkdir(parents=True)
    if good:
        (folder / ".edgekit-good").touch()


def test_rollback_and_prune_only_consider_good_releases(tmp_path):
    base = tmp_path / "edge"
    make_release(base, "20260101T000000Z-aaa", good=True)
    make_release(base, "20260102T000000Z-bbb", good=True)
    make_release(base, "20260103T000000Z-ccc", good=False)  # never checked (a killed deploy)
    make_release(base, "20260104T000000Z-ddd", good=True)
    make_release(base, "20260105T000000Z-eee.partial", good=False)
    (base / ".current.tmp").symlink_to("releases/x")
    assert remote(base, "activate", "20260103T000000Z-ccc").returncode != 0  # unchecked: refused
    assert remote(base, "activate", "20260104T000000Z-ddd").returncode == 0
    assert remote(base, "previous").stdout.strip() == "20260102T000000Z-bbb"  # skips ccc
    state = remote(base, "state").stdout
    assert "release=20260103T000000Z-ccc" not in state and "release=20260104T000000Z-ddd" in state
    assert not (base / "releases" / "20260105T000000Z-eee.partial").exists()  # swept
    assert not (base / ".current.tmp").is_symlink()
    assert remote(base, "prune", "1").returncode == 0
    assert sorted(p.name for p in (base / "releases").iterdir()) == ["20260104T000000Z-ddd"]
    # The current release is never pruned, nor the newest good one, even with keep 0.
    make_release(base, "20260106T000000Z-fff", good=True)
    assert remote(base, "prune", "0").returncode == 0
    assert sorted(p.name for p in (base / "releases").iterdir()) == [
        "20260104T000000Z-ddd", "20260106T000000Z-fff"]


def test_a_second_deploy_waits_for_the_lock_then_refuses(tmp_path):
    base = tmp_path / "edge"
    script = str(REPO / "deploy" / "remote.sh")
    holder = subprocess.Popen(["sh", script, "lock", str(base), "5"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = remote(base, "lock", "0.5")
        assert second.returncode == 3 and "another deploy" in second.stdout
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    # The holder's death (any death: its stdin closes) releases the lock.
    killed = subprocess.Popen(["sh", script, "lock", str(base), "5"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "locked"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stdin.close()
    deadline = time.monotonic() + 30
    while True:
        again = subprocess.Popen(["sh", script, "lock", str(base), "2"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        line = again.stdout.readline().strip()
        again.stdin.close()
        again.wait(timeout=10)
        if line == "locked" or time.monotonic() > deadline:
            break
    assert line == "locked"


def test_deploying_into_a_file_or_an_unwritable_folder_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = run_module("deploy", "local", "--task", "digits", "--artifacts", str(tmp_path),
                        "--dir", str(tmp_path / "afile"))
    assert_one_error_line(result, "is a file, not a folder")
    result = run_module("deploy", "local", "--task", "digits", "--artifacts", str(tmp_path),
                        "--dir", "/proc/edgekit-cannot-be-here")
    assert_one_error_line(result, "cannot be written")
    result = run_module("deploy", "local", "--task", "digits", "--dir", str(tmp_path / "d"),
                        "--keep", "0")
    assert result.returncode == 2 and "argument --keep" in result.stderr
