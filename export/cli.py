"""``python -m export TASK``: quantise and export a trained model into a self-contained bundle.

Examples::

    python -m export digits                          # every default format + report
    python -m export fruits --formats tflite-int8,onnx-int8
    python -m export handsigns --int8-io uint8       # uint8 input/output for the int8 TFLite
    python -m export diagnose digits --format tflite-int8   # per-layer quantisation error
    python -m export gestures                        # your own task (python -m train images)

Reads artifacts/TASK/model.keras (from `python -m train TASK`) and writes artifacts/TASK/bundle/:
model files, metadata.json (labels, preprocessing, checksums), samples.npz, report.md/.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from device.errors import UserError
from device.tasks import TASKS


def user_task_in(argv: list[str]) -> str | None:
    """The first word of ``argv`` when it names a user's task (``python -m train images``
    --name): export takes any trained task, not only the built-in names."""
    first = next((word for word in argv if not word.startswith("-")), None)
    if first is None or first in TASKS or first == "diagnose":
        return None
    return first


def at_least(minimum: int):
    """argparse type: an integer >= ``minimum`` (checked at parse time, before TensorFlow)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value
    return parse


def build_parser(user_task: str | None = None) -> argparse.ArgumentParser:
    from export.formats import DEFAULT_FORMATS, FORMATS

    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="TASK")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--artifacts", default="artifacts", help="artifacts root")
    common.add_argument("--data-dir", help="dataset folder (default: as the model was trained)")
    diagnose = commands.add_parser(
        "diagnose", parents=[common], help="per-layer quantisation error of a bundle's model",
        description="Compare every intermediate activation of the float and the quantised model "
                    "(SQNR, cosine, RMSE) on the test images it flipped, and rank the int8 "
                    "model's layers by their effect on the output (each kept in float alone); "
                    "writes "
                    "artifacts/TASK/diagnose-FORMAT.md and .json.")
    diagnose.add_argument("task", choices=list(TASKS))
    diagnose.add_argument("--format", required=True, dest="model_format",
                          choices=["tflite-int8", "onnx-int8", "tflite-dynamic", "tflite-fp16"])
    diagnose.add_argument("--bundle", type=Path, help="bundle folder (default: "
                          "artifacts/TASK/bundle)")
    diagnose.add_argument("--images", type=at_least(1), default=64,
                          help="images to compare (default 64)")
    diagnose.add_argument("--top", type=at_least(1), default=10, help="worst layers to list")
    diagnose.add_argument("--sqnr-only", action="store_true",
                          help="skip the per-layer effect ranking (re-quantises once per layer)")
    tasks = {name: f"export the {name} model ({spec.description})"
             for name, spec in TASKS.items()}
    if user_task:
        tasks[user_task] = f"export your own task {user_task} (python -m train images)"
    for name, help_text in tasks.items():
        sub = commands.add_parser(name, parents=[common], help=help_text)
        sub.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                         help=f"comma-separated, from: {', '.join(FORMATS)} "
                              f"(default: {','.join(DEFAULT_FORMATS)})")
        sub.add_argument("--int8-io", choices=["int8", "uint8"], default="int8",
                         help="input/output type of the full-int8 TFLite model")
        sub.add_argument("--calibration-count", type=at_least(10), default=500,
                         help="calibration images drawn from the training split")
        sub.add_argument("--calibration-seed", type=at_least(0), default=0)
        sub.add_argument("--latency-runs", type=at_least(1), default=100,
                         help="single-image runs per format for the latency column")
        sub.add_argument("--stage-photos", type=at_least(1), metavar="N",
                         help="hand-landmark bundles: judge the converted and quantised hand "
                              "stages, and each whole pipeline, on N test photos spread "
                              "evenly over the test split (default: all; each check runs the "
                              "hand tracker on every one, ~0.3 s a photo)")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(user_task_in(argv)).parse_args(argv)
    from device.interrupts import terminate_as_interrupt

    try:
        with terminate_as_interrupt():
            return run_command(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: export stopped, staging folders removed; the previous bundle is "
              "left as it was", file=sys.stderr)
        return 130


def run_command(args) -> int:
    """The chosen subcommand; UserError and interrupts are turned into one line by main."""
    if args.command == "diagnose":
        from export.diagnose import diagnose, print_table

        print_table(diagnose(args.task, args.model_format, Path(args.artifacts), args.bundle,
                             args.images, top=args.top, effect=not args.sqnr_only,
                             data_dir=args.data_dir))
        return 0
    from export.exporter import export

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        raise UserError(f"--formats {args.formats!r} names no format: list some, e.g. "
                        "--formats tflite-int8,onnx-int8 (or leave it out for the default set)")
    export(args.command, Path(args.artifacts), formats, args.data_dir,
           args.int8_io, args.calibration_count, args.calibration_seed, args.latency_runs,
           stage_photos=args.stage_photos)
    return 0
