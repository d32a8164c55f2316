"""``python -m device``: classify live frames on a Pi or laptop with an exported bundle.

Examples::

    python -m device run --bundle artifacts/digits/bundle --source 0          # webcam, window
    python -m device run --bundle B --source clip.mp4 --headless              # JSON lines
    python -m device run --bundle B --source photos/ --headless --model onnx-int8
    python -m device run --bundle B --source picamera --save out.mp4          # Pi camera
    python -m device check --bundle B       # self-test: checksums, every model, sample accuracy
    python -m device bench --bundle B       # latency per format and threads, end-to-end FPS
    python -m device collect --label thumbs_up --out captures/   # capture your own class
    python -m device collect --label none --out captures/ --source clip.mp4 --headless

Needs only numpy, OpenCV and one runtime (ai-edge-litert / tflite-runtime, or onnxruntime);
never TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from device.errors import UserError


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m device", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="classify a camera, video or image folder in real time")
    run.add_argument("--bundle", required=True, type=Path, help="bundle folder (metadata.json)")
    run.add_argument("--source", default="0",
                     help="camera index (0), 'picamera', a video file or an image folder")
    run.add_argument("--model", help="e.g. tflite-int8, onnx-int8, tflite-fp32 "
                                     "(default: the bundle's best int8 model)")
    run.add_argument("--threads", type=positive_int, default=2,
                     help="inference threads, fixed when the interpreter is built (default 2)")
    run.add_argument("--roi", default="auto",
                     help="region to classify: a centre-box fraction (0.6), 'full', or x,y,w,h "
                          "pixels (default: 0.6 for cameras/videos, full for image folders); "
                          "a fraction snaps to a whole multiple of the model's input side")
    run.add_argument("--headless", action="store_true",
                     help="no window: one JSON line per frame on stdout")
    run.add_argument("--save", type=Path, help="record the annotated stream (.mp4 or .avi)")
    smoothing = run.add_mutually_exclusive_group()
    smoothing.add_argument("--smooth", dest="smoothing", action="store_true", default=None,
                           help="average probabilities over recent frames (default for "
                                "cameras and videos)")
    smoothing.add_argument("--no-smooth", dest="smoothing", action="store_false",
                           help="classify every frame on its own (default for image folders)")
    run.add_argument("--alpha", type=float, default=0.4,
                     help="weight of the newest frame in the smoothing (default 0.4)")
    run.add_argument("--threshold", type=float, default=0.6,
                     help="below this confidence the label is 'unsure' (default 0.6)")
    run.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    run.add_argument("--width", type=positive_int, help="camera frame width to request")
    run.add_argument("--height", type=positive_int, help="camera frame height to request")
    run.add_argument("--fps", type=float, help="camera frame rate to request")

    check = commands.add_parser("check", help="self-test a bundle: checksums, every model, "
                                              "sample accuracy and latency")
    check.add_argument("--bundle", required=True, type=Path)
    check.add_argument("--threads", type=positive_int, default=1)
    check.add_argument("--json", action="store_true", help="print the result as JSON")

    add_collect_command(commands)

    bench = commands.add_parser("bench", help="latency per format and threads, end-to-end FPS")
    bench.add_argument("--bundle", required=True, type=Path)
    bench.add_argument("--threads", type=positive_int, default=2,
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
    collect.add_argument("--interval", type=float, default=0.2,
                         help="seconds between images (video time for a video file; "
                              "default 0.2)")
    collect.add_argument("--countdown", type=float, default=3.0,
                         help="seconds before the burst starts, live cameras only (default 3)")
    collect.add_argument("--roi", default="auto", help="as for run: the region saved (default: "
                         "the 0.6 centre box for cameras/videos, the whole image for folders)")
    collect.add_argument("--bundle", type=Path, help="frame the captures with this bundle's "
                         "pipeline (a hands bundle also saves the hand crop and landmarks)")
    collect.add_argument("--full-frame", action="store_true",
                         help="also save the whole frame (OUT/LABEL/full/)")
    collect.add_argument("--min-change", type=float, default=2.0,
                         help="skip a frame whose mean gray level (32x32 thumbnail) changed "
                              "less than this since the last saved one (default 2; 0 = keep all)")
    collect.add_argument("--format", dest="image_format", choices=["jpg", "png"], default="jpg",
                         help="jpg (quality 95, default) or png (lossless)")
    collect.add_argument("--headless", action="store_true",
                         help="no window: a progress line per image on stderr")
    collect.add_argument("--width", type=positive_int, help="camera frame width to request")
    collect.add_argument("--height", type=positive_int, help="camera frame height to request")
    collect.add_argument("--fps", type=float, help="camera frame rate to request")


def run_collect(args) -> int:
    from device.collect import CollectOptions, collect

    capture = collect(CollectOptions(
        label=args.label, out=args.out, source=args.source, count=args.count,
        interval=args.interval, countdown=args.countdown, roi=args.roi, bundle=args.bundle,
        full_frame=args.full_frame, min_change=args.min_change, headless=args.headless,
        image_format=args.image_format, width=args.width, height=args.height, fps=args.fps))
    return 130 if capture.stopped == "interrupted" else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            from device.runner import Runner, RunOptions

            options = RunOptions(bundle=args.bundle, source=args.source, model=args.model,
                                 threads=args.threads, roi=args.roi, headless=args.headless,
                                 save=args.save, smoothing=args.smoothing, alpha=args.alpha,
                                 threshold=args.threshold, max_frames=args.max_frames,
                                 width=args.width, height=args.height, fps=args.fps)
            Runner(options).run()
            return 0
        if args.command == "collect":
            return run_collect(args)
        if args.command == "check":
            from device.check import main as check_main
            return check_main(args.bundle, args.threads, args.json)
        from device.bench import main as bench_main
        models = [m.strip() for m in args.models.split(",")] if args.models else None
        return bench_main(args.bundle, args.threads, args.runs, args.video, models, args.json)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
