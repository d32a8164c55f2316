"""Device pieces that need no model: ROI parsing, the digit pipeline, smoothing, sources."""

import threading
import time

import cv2
import numpy as np
import pytest

from device.camera import Roi, mnistify, parse_roi, roi_for
from device.errors import UserError
from device.footage import digit_on_paper, write_video
from device.smoothing import UNSURE, ExponentialVote
from device.sources import open_source
from device.sources.webcam import WebcamSource


def test_parse_roi_forms_and_errors():
    assert parse_roi("full") == "full"
    assert parse_roi("0.6") == 0.6
    assert parse_roi("10,20,100,50") == (10, 20, 100, 50)
    for bad in ("2", "0", "1,2,3", "a,b,c,d", "-1,0,10,10"):
        with pytest.raises(UserError, match="--roi"):
            parse_roi(bad)


def test_roi_is_centred_and_clipped():
    assert roi_for((480, 640, 3), 0.5) == Roi(200, 120, 240, 240)
    assert roi_for((480, 640, 3), "full") == Roi(0, 0, 640, 480)
    assert roi_for((480, 640, 3), (600, 400, 40, 80)) == Roi(600, 400, 40, 80)
    with pytest.raises(UserError, match="does not fit"):  # refused, no longer clamped (issue 14)
        roi_for((480, 640, 3), (600, 400, 100, 100))
    # Snapped to a whole multiple of the model side (fast, exact area resize); never past the frame.
    assert roi_for((480, 640, 3), 0.6, 64) == Roi(192, 112, 256, 256)
    assert roi_for((480, 640, 3), 1.0, 64) == Roi(96, 16, 448, 448)
    assert roi_for((40, 60, 3), 0.6, 64) == Roi(18, 8, 24, 24)


def test_fit_image_rgb_identical_to_converting_first():
    """The late BGR -> RGB swap in fit_image is an optimisation, not a change of output."""
    from device.preprocess import center_square, composite_on_white, fit_image, resize
    from device.tasks import TASKS

    spec = TASKS["handsigns"].preprocessing()
    rng = np.random.default_rng(0)
    for shape in ((480, 640, 3), (97, 131, 3), (30, 20, 4)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        # BGRA: transparent pixels become white paper first (issue 14), then the same swap.
        bgr = composite_on_white(image) if shape[2] == 4 else image
        expected = resize(center_square(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)),
                          tuple(spec["size"]))
        np.testing.assert_array_equal(fit_image(image, spec), expected)


def mnist_digit() -> np.ndarray:
    """A hand-drawn-style '7' stroke, white on black, laid out like MNIST (20x20 in 28x28)."""
    digit = np.zeros((28, 28), np.uint8)
    cv2.line(digit, (7, 6), (20, 6), 255, 2)
    cv2.line(digit, (20, 6), (11, 23), 255, 2)
    return cv2.GaussianBlur(digit, (3, 3), 0)


def test_mnistify_recovers_an_mnist_like_patch_from_a_camera_frame():
    digit = mnist_digit()
    frame = digit_on_paper(digit, np.random.default_rng(3))
    roi = roi_for(frame.shape, 0.6)
    patch = mnistify(roi.cut(frame))
    assert patch.shape == (28, 28, 1) and patch.dtype == np.uint8
    # White ink on black, mass-centred like MNIST (a 7's heavy top bar pushes its stem down,
    # as in MNIST itself, so only the top margin must stay blank).
    assert patch[:3].max() < 40 and patch.max() > 200
    ys, xs = np.nonzero(patch[:, :, 0] > 60)
    assert abs(ys.mean() - 13.5) < 3 and abs(xs.mean() - 13.5) < 3
    # Shape survives: high correlation with the drawn digit after both are centred.
    reference = mnistify(255 - np.repeat(digit[:, :, None], 3, 2))[:, :, 0].astype(float)
    correlation = np.corrcoef(reference.ravel(), patch[:, :, 0].astype(float).ravel())[0, 1]
    assert correlation > 0.6


def test_mnistify_says_nothing_on_blank_paper_with_noise_and_gradient():
    rng = np.random.default_rng(0)
    frame = digit_on_paper(np.zeros((28, 28), np.uint8), rng)
    assert mnistify(roi_for(frame.shape, 0.6).cut(frame)) is None


def test_exponential_vote_smooths_and_gates():
    vote = ExponentialVote(["a", "b"], alpha=0.5, threshold=0.6)
    assert vote.update(np.array([0.9, 0.1])) == ("a", pytest.approx(0.9))
    label, score = vote.update(np.array([0.1, 0.9]))  # one odd frame does not flip the label
    assert label == UNSURE and score == pytest.approx(0.5)
    assert vote.update(np.array([0.1, 0.9]))[0] == "b"
    assert vote.update(None)[0] == UNSURE  # nothing seen: decays


def test_open_source_rejects_missing_paths(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        open_source(str(tmp_path / "missing.mp4"))


def test_empty_image_folder(tmp_path):
    with pytest.raises(UserError, match="has no images"):
        open_source(str(tmp_path))


def test_unreadable_video(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(UserError, match="cannot read video"):
        open_source(str(bad))


def test_video_and_folder_sources_read_every_frame(tmp_path):
    frames = [np.full((48, 64, 3), i * 20, np.uint8) for i in range(5)]
    video = open_source(str(write_video(frames, tmp_path / "v.avi")))
    assert sum(1 for _ in iter(video.read, None)) == 5
    (tmp_path / "imgs").mkdir()
    for name in ("b.png", "a.png"):
        cv2.imwrite(str(tmp_path / "imgs" / name), frames[0])
    folder = open_source(str(tmp_path / "imgs"))
    assert [folder.read()[1], folder.read()[1], folder.read()] == ["a.png", "b.png", None]


class FakeCapture:
    """A camera that delivers ``frames`` frames and then goes dark (unplugged)."""

    def __init__(self, frames: int, opened: bool = True):
        self.left = frames
        self.opened = opened

    def isOpened(self):
        return self.opened

    def set(self, *_):
        return True

    def read(self):
        time.sleep(0.001)
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self):
        self.opened = False


def test_no_camera_at_that_index():
    with pytest.raises(UserError, match="no camera at index 7"):
        WebcamSource(7, opener=lambda index: FakeCapture(0, opened=False))


def test_unplugged_camera_reconnects_with_backoff_then_fails_clearly():
    pauses = []
    opened = iter([FakeCapture(3)] + [FakeCapture(0, opened=False)] * 10)
    source = WebcamSource(0, opener=lambda index: next(opened), backoff=(0.1, 0.2, 0.4),
                          sleep=pauses.append)
    got = 0
    with pytest.raises(UserError, match="stopped delivering frames .* 3 reconnect attempts"):
        for _ in range(10):
            source.read()
            got += 1
    assert 1 <= got <= 3 and pauses == [0.1, 0.2, 0.4]
    source.close()


def test_camera_that_comes_back_keeps_running():
    captures = iter([FakeCapture(2), FakeCapture(0, opened=False), FakeCapture(1000)])
    source = WebcamSource(0, opener=lambda index: next(captures), backoff=(0.0, 0.0, 0.0),
                          sleep=lambda s: None)
    frames = [source.read()[0] for _ in range(10)]
    assert len(frames) == 10
    source.close()


def test_capture_thread_keeps_only_the_newest_frame():
    counter = {"n": 0}

    def grab():
        counter["n"] += 1
        time.sleep(0.002)
        return np.array([counter["n"]])

    from device.sources.latest import LatestFrame

    latest = LatestFrame(grab)
    first = int(latest.get()[0])
    time.sleep(0.1)  # a slow model: many frames arrive meanwhile
    second = int(latest.get()[0])
    latest.stop()
    assert second - first > 5  # it skipped the backlog instead of queueing it


def test_a_silent_camera_times_out_instead_of_hanging():
    from device.sources.latest import LatestFrame

    stop = threading.Event()
    latest = LatestFrame(lambda: stop.wait(5) or np.zeros(1), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(UserError, match="no frame from the camera"):
        latest.get()
    assert time.monotonic() - started < 2
    stop.set()
    latest.stop()
