"""``serve`` end to end: the real CLI on footage of real MNIST test digits (device/footage.py:
dark ink on light paper, lighting gradient, sensor noise, JPEG), watched by a real headless
Chromium driven through chromedriver's plain HTTP WebDriver protocol (urllib; no Selenium, no
browser download). Also: window mode with no display fails in one line.

Chromium and its driver come from Debian (``apt-get install -y chromium chromium-driver``);
without them the browser test is skipped, saying so.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.footage import digit_on_paper, write_video
from train.data import load_dataset

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"   # the W3C WebDriver element key
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,900"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, timeout: float = 60) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (OSError, urllib.error.URLError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


class Browser:
    """A headless Chromium session over WebDriver: just the commands these tests need."""

    def __init__(self, profile: Path):
        self.port = free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(lambda: http("GET", f"{self.base}/status")["value"]["ready"],
                 what="chromedriver")
        options = {"binary": shutil.which("chromium"),
                   "args": [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]}
        reply = http("POST", f"{self.base}/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"{self.base}/session/{reply['value']['sessionId']}"

    def open(self, url: str) -> None:
        http("POST", f"{self.session}/url", {"url": url})

    def script(self, source: str):
        return http("POST", f"{self.session}/execute/sync",
                    {"script": source, "args": []})["value"]

    def element_png(self, css: str) -> bytes:
        found = http("POST", f"{self.session}/element", {"using": "css selector", "value": css})
        shot = http("GET", f"{self.session}/element/{found['value'][ELEMENT]}/screenshot")
        return base64.b64decode(shot["value"])

    def page_png(self) -> bytes:
        return base64.b64decode(http("GET", f"{self.session}/screenshot")["value"])

    def close(self) -> None:
        try:
            http("DELETE", self.session, timeout=20)
        except (OSError, urllib.error.URLError):
            pass
        self.driver.terminate()
        self.driver.wait(20)


@pytest.fixture(scope="module")
def digits_bundle(quick_artifacts) -> Path:
    return quick_artifacts("digits") / "digits" / "bundle"


@pytest.fixture(scope="module")
def held_digits_video(data_dir, tmp_path_factory) -> Path:
    """Six MNIST test digits, each held for 8 frames, at 5 fps: a slow clip, so the page's
    label and the JSON endpoint can be read at the same frame."""
    data = load_dataset("digits", data_dir, 28)
    rng = np.random.default_rng(5)
    frames = [digit_on_paper(data.x_test[index, :, :, 0], rng)
              for index in range(6) for _ in range(8)]
    return write_video(frames, tmp_path_factory.mktemp("serve") / "digits.avi", fps=5.0)


def start_serve(bundle: Path, video: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``python -m device serve`` on a free port; returns the process and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "device", "serve", "--bundle", str(bundle), "--source",
         str(video), "--port", "0", *extra],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if line.startswith("serving "):
            return process, line.split()[1]
    process.wait(30)
    raise AssertionError(f"serve exited with {process.returncode} before serving")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver "
                           "(apt-get install -y chromium chromium-driver)")
def test_live_page_in_a_real_browser(digits_bundle, held_digits_video, tmp_path):
    process, url = start_serve(digits_bundle, held_digits_video, "--loop")
    browser = None
    try:
        browser = Browser(Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)))
        browser.open(url)
        assert browser.script("return document.title") == "edgekit live view"
        wait_for(lambda: browser.script("return document.getElementById('label')"
                                        ".dataset.label"), what="the page's first label")

        # The MJPEG image updates: element screenshots until two differ (the digits change
        # every 8 frames at 5 fps, and the sensor noise differs in every frame).
        seen: set[bytes] = set()

        def view_changes():
            png = browser.element_png("#view")
            picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
            assert picture is not None and picture.shape[1] > 300 and picture.std() > 5
            seen.add(png)
            return len(seen) >= 2
        wait_for(view_changes, what="two distinct frames of the MJPEG stream")

        # The label shown equals /api/result's, read at the same frame.
        def same_frame():
            shown = browser.script(
                "const l = document.getElementById('label');"
                "return [l.dataset.label, l.textContent, Number(document.body.dataset.frame)]")
            with urllib.request.urlopen(url + "api/result", timeout=20) as response:
                result = json.loads(response.read())
            return (shown, result) if shown[2] == result["frame"] else None
        (label, text, frame), result = wait_for(same_frame, what="a page and API on one frame")
        assert label == result["label"], (text, result)
        expected = f"unsure ({result['guess']}?)" if label == "unsure" and result["guess"] \
            else label
        assert text == expected
        facts = browser.script("return ['model', 'bundle', 'fps', 'latency', 'uptime']"
                               ".map(id => document.getElementById(id).textContent)")
        assert facts[0] == result["model"] and "digits" in facts[1]
        assert facts[2].endswith("fps") and facts[3].endswith(")") and ":" in facts[4]
        bars = browser.script("return document.querySelectorAll('#top li').length")
        assert bars == min(3, len(result["top"]))

        screenshot = tmp_path / "serve-page.png"
        screenshot.write_bytes(browser.page_png())
        assert cv2.imread(str(screenshot)) is not None
        print(f"screenshot: {screenshot}")
    finally:
        if browser is not None:
            browser.close()
        stop(process)


def test_serve_ends_with_the_video_and_reports_its_rate(digits_bundle, held_digits_video):
    """Without --loop, serve stops when the source ends and says how many frames it did."""
    completed = subprocess.run(
        [sys.executable, "-m", "device", "serve", "--bundle", str(digits_bundle), "--source",
         str(held_digits_video), "--port", "0", "--fast"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "48 frames in" in completed.stderr


def test_window_mode_without_a_display_is_one_error_line(digits_bundle, held_digits_video):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    completed = subprocess.run(
        [sys.executable, "-m", "device", "run", "--bundle", str(digits_bundle), "--source",
         str(held_digits_video)], cwd=REPO, capture_output=True, text=True, env=environment,
        timeout=300)
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2, completed.stderr
    assert len(lines) == 1 and lines[0].startswith("error: cannot open a window"), lines
    assert "serve" in lines[0] and "--headless" in lines[0]
    assert completed.stdout == ""


def test_no_camera_is_one_line_naming_a_video_and_footage_writes_one(digits_bundle, tmp_path):
    """No camera at that index: one line that names a video to play; ``footage`` writes it
    (what ``make demo`` runs) and ``run`` plays it."""
    missing = subprocess.run(
        [sys.executable, "-m", "device", "run", "--bundle", str(digits_bundle), "--source", "9",
         "--headless"], cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1, missing.stderr
    assert lines[0].startswith("error: no camera at index 9") and "footage.avi" in lines[0]
    video = tmp_path / "demo" / "footage.avi"
    made = subprocess.run([sys.executable, "-m", "device", "footage", "--bundle",
                           str(digits_bundle), "--out", str(video), "--frames", "30"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    played = subprocess.run(
        [sys.executable, "-m", "device", "run", "--bundle", str(digits_bundle), "--source",
         str(video), "--headless"], cwd=REPO, capture_output=True, text=True, timeout=300)
    records = [json.loads(line) for line in played.stdout.splitlines()]
    assert played.returncode == 0 and len(records) == 30
    assert records[0]["source"] == "footage.avi"
