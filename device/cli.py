"""``python -m device``: classify live frames on a Pi or laptop with an exported bundle.

Examples::

    python -m device run --bundle artifacts/digits/bundle --source 0          # webcam, window
    python -m device run --bundle B --source clip.mp4 --headless              # JSON lines
    python -m device run --bundle B --source photos/ --headless --model onnx-int8
    python -m device run --bundle B --source picamera --save out.mp4          # Pi camera
    python -m device serve --bundle B --source 0 --port 8080    # live view: http://127.0.0.1:8080/
    python -m device check --bundle B       # self-test: checksums, every model, sample accuracy
    python -m device bench --bundle B       # latency per format and threads, end-to-end FPS
    python -m device footage --bundle B --out clip.avi   # a video to play without a camera
    python -m device collect --label thumbs_up --out captures/   # capture your own class
    python -m device collect --label none --out captures/ --source clip.mp4 --headless

Needs only numpy, OpenCV and one runtime (ai-edge-litert / tflite-runtime, or onnxruntime);
never TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from device.errors import UserError

#: More inference threads than this only make the threads fight over the cores (onnxruntime
#: with 1000 threads stalls the whole machine).
MAX_THREADS_PER_CORE = 4


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def thread_count(text: str) -> int:
    """``--threads``: at least 1, capped at 4x the cores with a warning."""
    value = positive_int(text)
    limit = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if value > limit:
        print(f"warning: --threads {value} is more than {MAX_THREADS_PER_CORE}x the "
              f"{os.cpu_count() or 1} cores: using {limit}", file=sys.stderr)
        return limit
    return value


def fraction(low: float, high: float, low_open: bool = False):
    """argparse type: a number in [low, high] (or (low, high] with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        below = value <= low if low_open else value < low
        if below or value > high or value != value:
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"{text} is outside {bracket}{low:g}, {high:g}]")
        return value
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def at_most(high: float):
    """argparse type: a finite number from 0 to ``high`` (seconds, gray levels)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 <= value <= high:  # NaN fails both comparisons
            raise argparse.ArgumentTypeError(f"{text} is outside [0, {high:g}]")
        return value
    return parse


def roi_option(text: str) -> str:
    """``--roi`` checked for its form at parse time (before a model loads); whether pixels fit
    the frame is known only when the source gives its first frame."""
    if text.strip().lower() != "auto":
        from device.camera import parse_roi

        try:
            parse_roi(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("--roi ", "", 1)) from None
    return text


def save_path(text: str) -> Path:
    """``--save``: a .mp4/.avi path in an existing folder, checked before a frame is read."""
    path = Path(text).expanduser()
    if path.suffix.lower() not in (".mp4", ".avi"):
        raise argparse.ArgumentTypeError(f"{text}: use a .mp4 or .avi file name")
    if not path.parent.is_dir() or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: its folder {path.parent} does not exist (or "
                                         "the path is a folder): create the folder first")
    return path


def add_run_arguments(parser: argparse.ArgumentParser, serving: bool = False) -> None:
    """The options ``run`` and ``serve`` share: one definition, so they never drift apart."""
    parser.add_argument("--bundle", required=True, type=Path, help="bundle folder (metadata.json)")
    parser.add_argument("--source", default="0",
                        help="camera index (0), 'picamera', a video file or an image folder")
    parser.add_argument("--model", help="e.g. tflite-int8, onnx-int8, tflite-fp32 "
                                        "(default: the bundle's best int8 model)")
    parser.add_argument("--threads", type=thread_count, default=2,
                        help="inference threads, fixed when the interpreter is built (default 2)")
    parser.add_argument("--roi", default="auto", type=roi_option,
                        help="region to classify: a centre-box fraction (0.6), 'full', or x,y,w,h "
                             "pixels (default: 0.6 for cameras/videos, full for image folders); "
                             "a fraction snaps to a whole multiple of the model's input side")
    parser.add_argument("--headless", action="store_true",
                        help="also print one JSON line per frame on stdout" if serving else
                        "no window: one JSON line per frame on stdout")
    parser.add_argument("--save", type=save_path,
                        help="record the annotated stream (.mp4 or .avi)")
    smoothing = parser.add_mutually_exclusive_group()
    smoothing.add_argument("--smooth", dest="smoothing", action="store_true", default=None,
                           help="average probabilities over recent frames (default for "
                                "cameras and videos)")
    smoothing.add_argument("--no-smooth", dest="smoothing", action="store_false",
                           help="classify every frame on its own (default for image folders)")
    parser.add_argument("--alpha", type=fraction(0.0, 1.0, low_open=True), default=0.4,
                        help="weight of the newest frame in the smoothing, in (0, 1] "
                             "(default 0.4)")
    parser.add_argument("--threshold", type=fraction(0.0, 1.0), default=None,
                        help="below this confidence the label is 'unsure', in [0, 1] "
                             "(default: the bundle's pipeline.min_confidence, else 0.6)")
    parser.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    parser.add_argument("--width", type=positive_int, help="camera frame width to request")
    parser.add_argument("--height", type=positive_int, help="camera frame height to request")
    parser.add_argument("--fps", type=positive_float, help="camera frame rate to request")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; "
                             "0.0.0.0 to open the page from another computer)")
    parser.add_argument("--port", type=int, default=8080, help="default 8080 (0: any free port)")
    parser.add_argument("--token", help="require ?token=TOKEN on every request (8+ characters)")
    parser.add_argument("--stream-fps", type=float, default=15.0,
                        help="most frames per second streamed to viewers (default 15)")
    parser.add_argument("--jpeg-quality", type=int, default=70, help="default 70")
    parser.add_argument("--max-width", type=positive_int, default=960,
                        help="stream frames wider than this are scaled down (default 960)")
    parser.add_argument("--max-viewers", type=positive_int, default=8,
                        help="open streams at once (default 8)")
    parser.add_argument("--loop", action="store_true", help="replay a video file when it ends")
    parser.add_argument("--fast", action="store_true",
                        help="classify a video file as fast as possible (default: at its own "
                             "frame rate, as a camera would deliver it)")


def run_options(args: argparse.Namespace):
    from device.runner import RunOptions

    return RunOptions(bundle=args.bundle, source=args.source, model=args.model,
                      threads=args.threads, roi=args.roi, headless=args.headless,
                      save=args.save, smoothing=args.smoothing, alpha=args.alpha,
                      threshold=args.threshold, max_frames=args.max_frames,
                      width=args.width, height=args.height, fps=args.fps)


def serve_options(args: argparse.Namespace):
    from device.serve.app import ServeOptions

    return ServeOptions(host=args.host, port=args.port, token=args.token,
                        stream_fps=args.stream_fps, jpeg_quality=args.jpeg_quality,
                        max_width=args.max_width, max_viewers=args.max_viewers, loop=args.loop,
                        fast=args.fast, json_lines=args.headless)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m device", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="classify a camera, video or image folder in real time")
    add_run_arguments(run)

    serve = commands.add_parser(
        "serve", help="run, and show it live in a browser: page, MJPEG stream, JSON and events",
        description="Everything `run` does, plus a read-only web server: / (the page), "
                    "/stream.mjpg, /api/result (JSON), /api/events (Server-Sent Events).")
    add_run_arguments(serve, serving=True)
    add_serve_arguments(serve)

    footage = commands.add_parser(
        "footage", help="write a video of the bundle's sample images as a camera would see "
                        "them: something to run or serve without a camera")
    footage.add_argument("--bundle", required=True, type=Path)
    footage.add_argument("--out", required=True, type=Path, help="a .avi (MJPG) or .mp4 path")
    footage.add_argument("--frames", type=positive_int, default=300,
                         help="length (default 300: 20 s at 15 fps)")
    footage.add_argument("--hold", type=positive_int, default=15,
                         help="frames each sample is held for (default 15: one second)")

    check = commands.add_parser("check", help="self-test a bundle: checksums, every model, "
                                              "sample accuracy and latency")
    check.add_argument("--bundle", required=True, type=Path)
    check.add_argument("--threads", type=thread_count, default=1)
    check.add_argument("--json", action="store_true", help="print the result as JSON")

    add_collect_command(commands)

    bench = commands.add_parser("bench", help="latency per format and threads, end-to-end FPS")
    bench.add_argument("--bundle", required=True, type=Path)
    bench.add_argument("--threads", type=thread_count, default=2,
                       help="measure 1..N threads (default 2)")
    bench.add_argument("--runs", type=positive_int, default=200)
    bench.add_argument("--video", type=Path,
                       help="a 640x480 video (default: footage made from the bundle's samples)")
    bench.add_argument("--models", help="comma-separated subset of the bundle's models")
    bench.add_argument("--json", action="store_true")
    return parser


def add_collect_command(commands) -> None:
    collect = commands.add_parser(
        "collect", help="capture training images of one class (then: python -m train images)",
        description="A countdown, then a burst of --count images of the region of interest "
                    "(raw, as the camera gave it) into OUT/LABEL/, with a manifest "
                    "(collect-<session>.json). Near-duplicate frames are skipped. --label none "
                    "captures 'nothing in view': the runner reports that class as nothing.")
    collect.add_argument("--label", required=True, help="the class (a folder name), e.g. "
                         "thumbs_up; 'none' = nothing in view")
    collect.add_argument("--out", required=True, type=Path, help="dataset folder: images go to "
                         "OUT/LABEL/")
    collect.add_argument("--source", default="0",
                         help="camera index (0), 'picamera', a video file or an image folder")
    collect.add_argument("--count", type=positive_int, default=30,
                         help="images to capture (default 30)")
    collect.add_argument("--interval", type=at_most(3600), default=0.2,
                         help="seconds between images (video time for a video file; "
                              "default 0.2)")
    collect.add_argument("--countdown", type=at_most(600), default=3.0,
                         help="seconds before the burst starts, live cameras only (default 3)")
    collect.add_argument("--roi", default="auto", type=roi_option, help="as for run: the region saved (default: "
                         "the 0.6 centre box for cameras/videos, the whole image for folders)")
    collect.add_argument("--bundle", type=Path, help="frame the captures with this bundle's "
                         "pipeline (a hands bundle also saves the hand crop and landmarks)")
    collect.add_argument("--hands", nargs="?", const="full", choices=["full", "lite"],
                         help="find a hand in each frame with MediaPipe's models (no bundle "
                              "needed): frames without a hand are skipped, each image gets its "
                              "hand crop (OUT/LABEL/hand/) and landmarks (in the manifest); for "
                              "training your own gestures with --arch landmarks")
    collect.add_argument("--full-frame", action="store_true",
                         help="also save the whole frame (OUT/LABEL/full/)")
    collect.add_argument("--min-change", type=at_most(255), default=2.0,
                         help="skip a frame whose mean gray level (32x32 thumbnail) changed "
                              "less than this since the last saved one (default 2; 0 = keep all)")
    collect.add_argument("--format", dest="image_format", choices=["jpg", "png"], default="jpg",
                         help="jpg (quality 95, default) or png (lossless)")
    collect.add_argument("--headless", action="store_true",
                         help="no window: a progress line per image on stderr")
    collect.add_argument("--width", type=positive_int, help="camera frame width to request")
    collect.add_argument("--height", type=positive_int, help="camera frame height to request")
    collect.add_argument("--fps", type=positive_float, help="camera frame rate to request")


def run_collect(args) -> int:
    from device.collect import CollectOptions, collect

    capture = collect(CollectOptions(
        label=args.label, out=args.out, source=args.source, count=args.count,
        interval=args.interval, countdown=args.countdown, roi=args.roi, bundle=args.bundle,
        hands=args.hands,
        full_frame=args.full_frame, min_change=args.min_change, headless=args.headless,
        image_format=args.image_format, width=args.width, height=args.height, fps=args.fps))
    return 130 if capture.stopped == "interrupted" else 0


def bench_models(text: str | None, bundle_dir: Path) -> list[str] | None:
    """``--models a,b``: each must be in the bundle (named in the error, with what it has)."""
    if not text:
        return None
    from device.bundle import open_bundle

    wanted = [m.strip() for m in text.split(",") if m.strip()]
    available = open_bundle(bundle_dir, verify=False).models
    unknown = [m for m in wanted if m not in available]
    if unknown or not wanted:
        raise UserError(f"--models {text}: {', '.join(unknown) or 'no model named'} not in bundle "
                        f"{bundle_dir}; it has {', '.join(available)}")
    return wanted


def ended_wrongly(runner) -> int:
    """A run that ended wrongly (skipped images, a truncated video) says so in one ``error:``
    line and exits 1 after its last frame."""
    problem = getattr(runner.source, "problem", None)
    message = problem() if problem else None
    if message:
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


def run(args) -> int:
    """``run``: the live loop."""
    from device.runner import Runner

    runner = Runner(run_options(args))
    runner.run()
    return ended_wrongly(runner)


def serve(args) -> int:
    """``serve``: the live loop plus the read-only web server."""
    from device.serve.app import serve as serve_loop

    return serve_loop(run_options(args), serve_options(args))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from device.interrupts import terminate_as_interrupt

    try:
        with terminate_as_interrupt():
            if args.command == "run":
                return run(args)
            if args.command == "serve":
                return serve(args)
            if args.command == "collect":
                return run_collect(args)
            if args.command == "footage":
                from device.footage import main as footage_main
                return footage_main(args.bundle, args.out, args.frames, args.hold)
            if args.command == "check":
                from device.check import main as check_main
                return check_main(args.bundle, args.threads, args.json)
            from device.bench import main as bench_main
            models = bench_models(args.models, args.bundle)
            return bench_main(args.bundle, args.threads, args.runs, args.video, models,
                              args.json)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
