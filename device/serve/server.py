"""The HTTP side of ``serve``: one page, an MJPEG stream, the latest result as JSON and as
Server-Sent Events. Read-only: GET and HEAD only, and only the fixed routes below.

Standard library only (``http.server.ThreadingHTTPServer``): the Pi needs no extra package, and
a thread per connection is what isolates viewers: a viewer that stops reading blocks only its
own thread, and its socket timeout drops it. MJPEG and SSE are long-lived responses; a handful
of viewers is a handful of mostly-sleeping threads, so an async framework would buy nothing
here but a dependency.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from device.errors import UserError
from device.serve.hub import Encoder, Hub

WEB = Path(__file__).resolve().parent / "web"
#: Every file the server can send: route -> (file in web/, content type). Request paths are
#: looked up here and never joined to a filesystem path, so nothing else is reachable.
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
BOUNDARY = "frame"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}


def plain(value):
    """json.dumps fallback for numpy numbers and arrays in a record."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def result_payload(hub: Hub) -> dict | None:
    """The latest record, plus the run's rates and identity: what /api/result and each
    /api/events message carry. None before the first frame."""
    snapshot = hub.latest()
    if snapshot is None:
        return None
    return {**snapshot.record,
            "fps": round(snapshot.fps, 2),
            "camera_fps": hub.info.get("camera_fps"),
            "bundle": hub.info.get("bundle"),
            "task": hub.info.get("task"),
            "uptime_s": round(hub.uptime(), 1),
            "age_s": round(time.monotonic() - snapshot.at, 3)}


def loopback_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers a page bound to this machine only may be asked for: a web page the
    user visits could otherwise point its own domain at 127.0.0.1 (DNS rebinding) and read
    the camera. None (no check) when listening on the network, where --token protects it."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        return None
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def page_files() -> dict:
    """The page's own files, read once: the only files the server ever sends."""
    try:
        return {route: ((WEB / name).read_bytes(), kind) for route, (name, kind) in PAGES.items()}
    except OSError as exc:
        raise UserError(f"the live page's file {exc.filename} cannot be read ({exc.strerror}): "
                        "reinstall or redeploy the device package (it ships device/serve/web/)"
                        ) from None


class ViewServer(ThreadingHTTPServer):
    """Holds what the handlers share: the hub, the encoder, the token and the stream limit."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, hub: Hub, encoder: Encoder, token: str | None = None,
                 max_streams: int = 8, events_fps: float = 15.0, write_timeout: float = 10.0):
        self.hub = hub
        self.encoder = encoder
        self.token = token
        self.streams = threading.BoundedSemaphore(max_streams)
        self.events_interval = 1.0 / events_fps
        self.write_timeout = write_timeout
        self.stopping = threading.Event()
        self.pages = page_files()
        super().__init__(address, Handler)
        self.allowed_hosts = loopback_hosts(self.server_address[0], self.server_address[1])

    def stop(self) -> None:
        """End every stream, then stop accepting connections."""
        self.stopping.set()
        self.shutdown()
        self.server_close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: ViewServer
    server_version = "edgekit-serve"
    sys_version = ""

    def setup(self) -> None:
        # The socket timeout is what drops a stalled viewer: a write that cannot complete
        # within it raises, the handler ends, and only this viewer's thread was waiting.
        self.timeout = self.server.write_timeout
        super().setup()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args) -> None:  # noqa: A002  (the base class's name)
        """Quiet: a viewer's requests are not the device's log (journalctl stays readable)."""

    # methods -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self.route(send_body=True)

    def do_HEAD(self) -> None:
        self.route(send_body=False)

    def refuse_method(self) -> None:
        self.send_plain(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only\n",
                        {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse_method

    # routing -------------------------------------------------------------------------------
    def route(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        allowed, host = self.server.allowed_hosts, self.headers.get("Host")
        if allowed is not None and host is not None and host.lower() not in allowed:
            self.send_plain(HTTPStatus.FORBIDDEN, "unexpected Host header: open the page as "
                            f"http://127.0.0.1:{self.server.server_address[1]}/\n")
            return
        if not self.authorised(url.query):
            self.send_plain(HTTPStatus.UNAUTHORIZED, "token required: open the page as "
                            "http://HOST:PORT/?token=...\n", {"WWW-Authenticate": "Bearer"})
            return
        if url.path in self.server.pages:
            body, kind = self.server.pages[url.path]
            self.send_body(HTTPStatus.OK, body, kind, send_body)
        elif url.path == "/api/result":
            self.send_result(send_body)
        elif url.path == "/stream.mjpg":
            self.stream_mjpeg(send_body)
        elif url.path == "/api/events":
            self.stream_events(send_body)
        else:
            self.send_plain(HTTPStatus.NOT_FOUND, "not found\n")

    def authorised(self, query: str) -> bool:
        expected = self.server.token
        if not expected:
            return True
        given = parse_qs(query).get("token", [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):]
        return hmac.compare_digest(given.encode(), expected.encode())

    # plain responses -----------------------------------------------------------------------
    def send_headers(self, status, kind: str, extra: dict | None = None,
                     length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()

    def send_body(self, status, body: bytes, kind: str, send_body: bool = True,
                  extra: dict | None = None) -> None:
        self.send_headers(status, kind, extra, len(body))
        if send_body:
            self.wfile.write(body)

    def send_plain(self, status, message: str, extra: dict | None = None) -> None:
        self.send_body(status, message.encode(), "text/plain; charset=utf-8", True, extra)

    def send_result(self, send_body: bool) -> None:
        payload = result_payload(self.server.hub)
        if payload is None:
            body = json.dumps({"error": "no frame yet"}).encode()
            self.send_body(HTTPStatus.SERVICE_UNAVAILABLE, body, "application/json", send_body,
                           {"Retry-After": "1"})
            return
        body = json.dumps(payload, default=plain).encode()
        self.send_body(HTTPStatus.OK, body, "application/json", send_body)

    # streams -------------------------------------------------------------------------------
    def open_stream(self, kind: str, send_body: bool) -> bool:
        """Headers of a long-lived response; False (and a 503) when too many are open."""
        if not send_body:
            self.send_headers(HTTPStatus.OK, kind)
            return False
        if not self.server.streams.acquire(blocking=False):
            self.send_plain(HTTPStatus.SERVICE_UNAVAILABLE, "too many viewers\n",
                            {"Retry-After": "5"})
            return False
        self.close_connection = True
        self.send_headers(HTTPStatus.OK, kind, {"Connection": "close"})
        return True

    def finished(self) -> bool:
        return self.server.stopping.is_set()

    def stream_mjpeg(self, send_body: bool) -> None:
        """multipart/x-mixed-replace: each part one JPEG, the newest the encoder made."""
        if not self.open_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}", send_body):
            return
        encoder = self.server.encoder
        encoder.attach()
        try:
            shown = 0
            while not self.finished():
                jpeg = encoder.wait_jpeg(shown, timeout=1.0)
                if jpeg is None:
                    if self.server.hub.closed and encoder.wait_jpeg(shown, 0) is None:
                        break
                    continue
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg.data)}\r\n\r\n").encode()
                self.wfile.write(head + jpeg.data + b"\r\n")
                shown = jpeg.seq
        except OSError:
            pass  # the viewer left, or stalled past the write timeout: drop it
        finally:
            encoder.detach()
            self.server.streams.release()

    def stream_events(self, send_body: bool) -> None:
        """Server-Sent Events: the newest result at most ``events_fps`` times a second, a
        comment every 15 s to keep proxies from closing an idle stream, ``event: end`` when
        the run is over."""
        if not self.open_stream("text/event-stream; charset=utf-8", send_body):
            return
        hub = self.server.hub
        try:
            self.wfile.write(b"retry: 2000\n\n")
            seen = 0
            while not self.finished():
                snapshot = hub.wait_newer(seen, timeout=15.0)
                if snapshot is None:
                    if hub.closed:
                        self.wfile.write(b"event: end\ndata: {}\n\n")
                        break
                    self.wfile.write(b": keep-alive\n\n")
                    continue
                seen = snapshot.seq
                payload = json.dumps(result_payload(hub), default=plain)
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.server.stopping.wait(self.server.events_interval)
        except OSError:
            pass
        finally:
            self.server.streams.release()
