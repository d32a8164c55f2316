"""``serve``'s hub, encoder and HTTP server against a fake frame producer (no model): the
endpoints, one encode per streamed frame however many viewers, read-only routes, the token,
and a stalled viewer dropped while another keeps receiving."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from device.runner import window_problem
from device.serve.hub import Encoder, Hub
from device.serve.server import ViewServer
from device.sources.paced import PacedSource


def noisy_frame(index: int, width: int = 640, height: int = 480) -> np.ndarray:
    rng = np.random.default_rng(index)
    return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)


def record(index: int) -> dict:
    return {"frame": index, "source": "fake", "model": "tflite-int8", "label": "7",
            "reason": "confident", "score": 0.9, "guess": None,
            "top": [{"label": "7", "score": 0.9}, {"label": "1", "score": 0.05},
                    {"label": "9", "score": 0.01}],
            "box": [176, 96, 288, 288], "latency_ms": np.float32(1.5), "preprocess_ms": 0.5}


class Producer(threading.Thread):
    """Publishes frames like the runner's hook does, ``rate`` per second, until stopped."""

    def __init__(self, hub: Hub, rate: float = 60.0, frames=None):
        super().__init__(daemon=True)
        self.hub, self.rate = hub, rate
        self.frames = frames or [noisy_frame(i % 8) for i in range(8)]
        self.stopped = threading.Event()
        self.count = 0

    def run(self):
        while not self.stopped.is_set():
            self.hub.publish(self.frames[self.count % len(self.frames)], None,
                             record(self.count), self.rate)
            self.count += 1
            self.stopped.wait(1.0 / self.rate)


@pytest.fixture
def served():
    """A running server fed by a fake producer; yields (server, hub, encoder, producer)."""
    started = []

    def start(token=None, rate=60.0, write_timeout=10.0, frames=None, quality=70,
              max_bytes=200_000, max_streams=8):
        hub = Hub({"bundle": "fake/bundle", "task": "digits", "camera_fps": 30.0})
        encoder = Encoder(hub, fps=15, quality=quality, max_bytes=max_bytes)
        server = ViewServer(("127.0.0.1", 0), hub, encoder, token, max_streams=max_streams,
                            write_timeout=write_timeout)
        producer = Producer(hub, rate, frames)
        encoder.start()
        producer.start()
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append((server, hub, encoder, producer))
        return server, hub, encoder, producer

    yield start
    for server, hub, encoder, producer in started:
        producer.stopped.set()
        hub.close()
        encoder.stop()
        server.stop()


def get(url: str, headers=None, method="GET", timeout=10):
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def read_jpegs(url: str, count: int, timeout: float = 20.0) -> list[bytes]:
    """The first ``count`` JPEGs of an MJPEG stream."""
    images = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(images) < count:
            line = response.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                response.readline()
                images.append(response.read(length))
    return images


def test_page_and_static_files(served):
    server, *_ = served()
    status, headers, body = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="app.js"' in body and b'id="label"' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert get(server.url + "app.js")[0] == 200
    assert get(server.url + "style.css")[0] == 200


def test_result_has_the_record_and_the_rates(served):
    server, *_ = served()
    wait_for(lambda: get(server.url + "api/result")[0] == 200, what="a first result")
    status, headers, body = get(server.url + "api/result")
    result = json.loads(body)
    assert headers["Content-Type"] == "application/json"
    assert {"label", "score", "frame", "fps", "top", "box", "model", "bundle",
            "uptime_s"} <= set(result)
    assert result["label"] == "7" and result["bundle"] == "fake/bundle"
    assert result["latency_ms"] == 1.5       # numpy numbers serialised


def test_mjpeg_stream_carries_distinct_decodable_frames(served):
    server, *_ = served()
    images = read_jpegs(server.url + "stream.mjpg", 4)
    assert len(set(images)) >= 2
    decoded = cv2.imdecode(np.frombuffer(images[-1], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (480, 640, 3)


def test_events_push_results(served):
    server, *_ = served()
    frames = []
    with urllib.request.urlopen(server.url + "api/events", timeout=20) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        while len(frames) < 3:
            line = response.readline()
            if line.startswith(b"data: "):
                frames.append(json.loads(line[6:])["frame"])
    assert frames == sorted(frames) and len(set(frames)) == 3


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/web/index.html", "/index.html",
                                  "/%2e%2e/%2e%2e/etc/passwd", "/app.js/../../serve/server.py",
                                  "//etc/passwd", "/api", "/stream"])
def test_nothing_outside_the_routes_is_reachable(served, path):
    server, *_ = served()
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        reply = b""
        while chunk := connection.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 404"), reply[:80]
    assert b"root:" not in reply and b"import" not in reply


def test_a_page_bound_to_this_machine_refuses_other_host_names(served):
    """DNS rebinding: evil.example resolving to 127.0.0.1 must not read the camera."""
    server, *_ = served()
    port = server.server_address[1]
    assert get(server.url, headers={"Host": f"evil.example:{port}"})[0] == 403
    assert get(server.url, headers={"Host": f"localhost:{port}"})[0] == 200
    assert get(server.url)[0] == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_read_only(served, method):
    server, *_ = served()
    status, headers, _ = get(server.url + "api/result", method=method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_token_is_required_when_set(served):
    server, *_ = served(token="s3cret-token")
    wait_for(lambda: get(server.url + "api/result?token=s3cret-token")[0] == 200,
             what="a first result")
    assert get(server.url)[0] == 401
    assert get(server.url + "api/result")[0] == 401
    assert get(server.url + "api/result?token=wrong-token")[0] == 401
    assert get(server.url + "?token=s3cret-token")[0] == 200
    bearer = {"Authorization": "Bearer s3cret-token"}
    assert get(server.url + "api/result", headers=bearer)[0] == 200
    assert len(read_jpegs(server.url + "stream.mjpg?token=s3cret-token", 2)) == 2


def test_one_encode_per_streamed_frame_however_many_viewers(served):
    """Three viewers receive the very same JPEGs; the encoder made one per streamed frame."""
    server, hub, encoder, producer = served()
    assert encoder.encoded == 0          # nobody watching: nothing encoded
    results: list[list[bytes]] = [[], [], []]

    def watch(slot):
        results[slot] = read_jpegs(server.url + "stream.mjpg", 10)

    viewers = [threading.Thread(target=watch, args=(i,)) for i in range(3)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(60)
    received = {image for images in results for image in images}
    assert all(len(images) == 10 for images in results)
    # Every JPEG any viewer got came out of one encode: distinct images <= encodes made.
    assert len(received) <= encoder.encoded
    # and at 15 fps streamed from 60 fps published, most frames were never encoded.
    assert encoder.encoded < producer.count


def test_a_stalled_viewer_is_dropped_and_others_keep_receiving(served):
    big = [noisy_frame(i, 960, 720) for i in range(4)]        # ~300 kB JPEGs at quality 90
    server, hub, encoder, producer = served(write_timeout=1.0, frames=big, quality=90,
                                            max_bytes=2_000_000)
    host, port = server.server_address[:2]
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((host, port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # and never read
    wait_for(lambda: encoder.viewers == 1, what="the stalled viewer to attach")
    images = read_jpegs(server.url + "stream.mjpg", 20, timeout=30)   # meanwhile: still served
    assert len(set(images)) >= 2
    wait_for(lambda: encoder.viewers == 0, timeout=60, what="the stalled viewer to be dropped")
    stalled.close()


def test_too_many_streams_are_refused(served):
    server, *_ = served(max_streams=1)
    with urllib.request.urlopen(server.url + "stream.mjpg", timeout=20) as first:
        first.readline()
        status, headers, _ = get(server.url + "api/events")
        assert status == 503 and "Retry-After" in headers


def test_hub_keeps_only_the_newest_frame():
    hub = Hub()
    assert hub.latest() is None and hub.wait_newer(0, 0.01) is None
    for index in range(5):
        hub.publish(noisy_frame(index, 8, 8), None, record(index), 30.0)
    newest = hub.wait_newer(0, 0.01)
    assert newest.seq == 5 and newest.record["frame"] == 4
    assert hub.wait_newer(5, 0.01) is None
    waiter = threading.Thread(target=lambda: hub.wait_newer(5, 30))
    waiter.start()
    hub.close()                          # wakes a waiting stream at the end of the run
    waiter.join(10)
    assert not waiter.is_alive()


def test_paced_source_plays_at_the_video_rate_and_loops():
    class Clip:
        name, fps, live = "clip.avi", 10.0, False

        def __init__(self):
            self.frames = [(noisy_frame(i, 4, 4), "clip.avi") for i in range(3)]

        def read(self):
            return self.frames.pop(0) if self.frames else None

        def close(self):
            pass

    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    paced = PacedSource(Clip(), 10.0, reopen=Clip, clock=lambda: now[0], sleep=sleep)
    items = [paced.read() for _ in range(7)]          # 3 frames, looped twice and one more
    assert all(item is not None for item in items)
    assert sleeps == [0.1] * 6                        # one frame every 0.1 s, no bursts
    unpaced = PacedSource(Clip(), None, clock=lambda: now[0], sleep=sleep)
    assert [unpaced.read() is None for _ in range(4)] == [False, False, False, True]


def test_window_problem_names_the_missing_display():
    def never():
        raise AssertionError("no probe needed")
    assert "DISPLAY" in window_problem(environ={}, platform="linux", gui=lambda: True,
                                       opens=never)
    assert window_problem(environ={"DISPLAY": ":0"}, platform="linux", gui=lambda: True,
                          opens=lambda: True) is None
    assert window_problem(environ={}, platform="darwin", gui=lambda: True, opens=never) is None
    assert "no window support" in window_problem(environ={"DISPLAY": ":0"}, platform="linux",
                                                 gui=lambda: False, opens=never)


def test_a_display_that_cannot_open_a_window_is_named():
    """DISPLAY set but unreachable (a stale ssh forward): the child probe fails, not us."""
    problem = window_problem(environ={"DISPLAY": ":99"}, platform="linux", gui=lambda: True,
                             opens=lambda: False)
    assert problem == "OpenCV could not open a window on display :99"
