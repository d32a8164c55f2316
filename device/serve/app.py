"""``serve``: build the runner with the hub as its publish hook, start the encoder and the web
server on their own threads, run the loop on the main thread (Ctrl-C stops it)."""

from __future__ import annotations

import errno
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import TextIO

from device.errors import UserError
from device.runner import Runner, RunOptions
from device.serve.hub import Encoder, Hub
from device.serve.server import ViewServer
from device.sources import open_source
from device.sources.paced import PacedSource


@dataclass
class ServeOptions:
    """The flags ``serve`` adds to ``run``'s."""

    host: str = "127.0.0.1"         # --host 0.0.0.0 exposes the page on the network
    port: int = 8080
    token: str | None = None        # required as ?token= (or a Bearer header) when set
    stream_fps: float = 15.0        # most JPEGs per second the stream carries
    jpeg_quality: int = 70
    max_width: int = 960            # streamed frames wider than this are scaled down
    max_viewers: int = 8            # open streams (MJPEG + events) at once
    loop: bool = False              # replay a video file when it ends
    fast: bool = False              # classify a video file as fast as possible (no pacing)
    json_lines: bool = False        # also print the JSON lines (run's --headless)


def check(options: ServeOptions) -> None:
    if not 0 <= options.port <= 65535:
        raise UserError(f"--port {options.port}: use a port between 1 and 65535")
    if not 0 < options.stream_fps <= 60:
        raise UserError(f"--stream-fps {options.stream_fps}: use a rate between 0 and 60")
    if not 10 <= options.jpeg_quality <= 95:
        raise UserError(f"--jpeg-quality {options.jpeg_quality}: use 10..95")
    if options.token is not None and len(options.token) < 8:
        raise UserError("--token is too short to protect anything: use at least 8 characters")


def bind(options: ServeOptions, hub: Hub, encoder: Encoder) -> ViewServer:
    """The listening socket, before the model loads, so a busy port fails at once."""
    try:
        return ViewServer((options.host, options.port), hub, encoder, options.token,
                          options.max_viewers, options.stream_fps)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"--port {options.port} is already in use: stop the other server "
                            "or pick another --port") from None
        if exc.errno == errno.EACCES:
            raise UserError(f"--port {options.port} needs root: use a port above 1023") from None
        raise UserError(f"cannot listen on {options.host}:{options.port} ({exc.strerror}): "
                        "check --host") from None


def pace(runner: Runner, run_options: RunOptions, options: ServeOptions) -> None:
    """Video files play at their own rate (people are watching) unless ``--fast``; ``--loop``
    replays them. Cameras and image folders are left as they are."""
    source = runner.source
    if getattr(source, "live", True) or not getattr(source, "fps", 0.0):
        return
    if options.fast and not options.loop:
        return

    def reopen():
        return open_source(run_options.source, run_options.width, run_options.height,
                           run_options.fps)
    runner.source = PacedSource(source, None if options.fast else source.fps,
                                reopen if options.loop else None)


def serve(run_options: RunOptions, options: ServeOptions, out: TextIO = sys.stdout,
          err: TextIO = sys.stderr) -> int:
    """Run until the source ends (or Ctrl-C). Returns the exit status: 1 when the source
    reports a problem after its last frame (skipped images, a truncated video), else 0."""
    check(options)
    hub = Hub()
    encoder = Encoder(hub, options.stream_fps, options.jpeg_quality, options.max_width)
    server = bind(options, hub, encoder)
    try:
        # Never a window; JSON lines only when asked (journalctl need not carry 30 lines/s).
        runner = Runner(replace(run_options, headless=True),
                        out=out if options.json_lines else None, publish=hub.publish)
    except BaseException:
        server.server_close()
        raise
    hub.inset_source = lambda: runner.pipeline.inset
    hub.info.update(model=runner.model_key, bundle=str(run_options.bundle),
                    task=runner.pipeline.bundle.task, source=runner.source.name,
                    camera_fps=round(getattr(runner.source, "fps", 0.0) or 0.0, 2) or None)
    pace(runner, run_options, options)
    encoder.start()
    threading.Thread(target=server.serve_forever, args=(0.1,), name="serve-http",
                     daemon=True).start()
    print(f"serving {server.url} (model {runner.model_key}, source {runner.source.name}); "
          "Ctrl-C to stop", file=err, flush=True)
    if options.host not in ("127.0.0.1", "localhost", "::1") and not options.token:
        print(f"note: --host {options.host} without --token: anyone who can reach this port can "
              "watch the camera", file=err, flush=True)
    started = time.perf_counter()
    frames = 0
    try:
        frames = runner.run()
    finally:
        elapsed = time.perf_counter() - started
        hub.close()
        time.sleep(0.2)            # let the streams send their last frame and "end"
        encoder.stop()
        server.stop()
        print(f"{frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} fps); "
              f"{encoder.encoded} JPEGs streamed", file=err, flush=True)
    problem = getattr(runner.source, "problem", None)
    message = problem() if problem else None
    if message:
        print(f"error: {message}", file=err, flush=True)
        return 1
    return 0
