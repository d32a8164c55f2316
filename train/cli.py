"""``python -m train TASK``: train a classifier from the real dataset with one command.

Examples::

    python -m train digits --data-dir ../shared/datasets
    DATA_DIR=../shared/datasets python -m train fruits --classes "Cherry 3,Plum 5"
    python -m train handsigns --epochs 80 --image-size 96
    python -m train digits --embedded          # no files, no internet: scikit-learn's digits
    python -m train images --data captures/ --name gestures   # your own classes: DIR/<class>/*
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from device.errors import UserError
from device.tasks import TASKS


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """argparse type: a ``kind`` (int/float) within bounds, checked at parse time, before
    TensorFlow loads (8-13 s), so a typo costs nothing and the error names the flag."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}"
                                             "number") from None
        if value != value or (low is not None and (value <= low if low_open else value < low)) \
                or (high is not None and (value >= high if high_open else value > high)):
            def shown(bound):
                return str(bound) if isinstance(bound, int) else f"{bound:g}"
            lower = "" if low is None else f"{'>' if low_open else '>='} {shown(low)}"
            upper = "" if high is None else f"{'<' if high_open else '<='} {shown(high)}"
            raise argparse.ArgumentTypeError(f"{text} must be {' and '.join(filter(None, (lower, upper)))}")
        return value
    return parse


def common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    data = parent.add_argument_group("data")
    data.add_argument("--data-dir", help="folder holding digits/, fruits/, handsigns/ "
                      "(default: $DATA_DIR; if unset, download when online)")
    data.add_argument("--limit-per-class", type=number(int, 1), metavar="N",
                      help="use at most N training images per class (quick runs)")
    data.add_argument("--val-split", type=number(float, 0.0, 0.5, high_open=True), default=None,
                      help="fraction of the training data held out for validation (default 0.1; a user's "
                           "task: 0 below 200 images; "
                           "0 trains on all of it, for a final run once the recipe is settled)")
    model = parent.add_argument_group("model and recipe (defaults depend on the task)")
    model.add_argument("--arch", choices=["convnet", "convnet-pair", "convnet-small",
                                          "mobilenetv3small", "landmarks"],
                       help="small from-scratch convnet, two small ones trained in turn and "
                            "averaged in one model (convnet-pair; --epochs per member), a "
                            "Pi-sized one (convnet-small; digits and fruits only differ), a "
                            "MobileNetV3-Small backbone, or (handsigns) "
                            "a classifier on MediaPipe hand landmarks; default: the task's "
                            "(train/trainer.py DEFAULT_ARCH)")
    model.add_argument("--hand-models", choices=["full", "lite"], default="full",
                       help="--arch landmarks: MediaPipe's full or lite palm/landmark models "
                            "(fetched by `python -m hand_models fetch`)")
    model.add_argument("--weights", metavar="FILE|imagenet",
                       help="backbone weights for mobilenetv3small: a local .h5 file offline, "
                            "or 'imagenet' to download")
    model.add_argument("--image-size", type=number(int, 8, 1024), metavar="PX", help="input side in pixels")
    model.add_argument("--epochs", type=number(int, 1))
    model.add_argument("--batch-size", type=number(int, 1))
    model.add_argument("--lr", type=number(float, 0.0, low_open=True), dest="learning_rate", help="peak learning rate")
    model.add_argument("--label-smoothing", type=number(float, 0.0, 1.0, high_open=True))
    model.add_argument("--weight-decay", type=number(float, 0.0), help="AdamW decoupled weight decay")
    model.add_argument("--mixup", type=number(float, 0.0), metavar="ALPHA",
                       help="MixUp Beta(alpha, alpha) blending of training pairs (0 = off)")
    model.add_argument("--ema", type=number(float, 0.0, 1.0, high_open=True), metavar="MOMENTUM",
                       help="keep an exponential moving average of the weights and save it "
                            "instead of the last step's (e.g. 0.99; 0 = off)")
    model.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                       help="save a model that averages its predictions over test-time views: "
                            "digits over the image and a copy 7 %% smaller, any other task over "
                            "the image and its mirror (classes that do not change when "
                            "mirrored); the device runs it unchanged at twice the inference "
                            "cost (default: on for the digits pair, off otherwise; --no-tta "
                            "turns it off)")
    run = parent.add_argument_group("run")
    run.add_argument("--seed", type=number(int, 0, 2**32 - 1), default=42,
                     help="seed for splits, init and augmentation")
    run.add_argument("--strategy", default="auto", choices=["auto", "mirrored", "multiworker"],
                     help="tf.distribute strategy; auto = mirrored when >1 GPU is visible")
    run.add_argument("--mixed-precision", default="auto", choices=["auto", "on", "off"],
                     help="mixed float16 (auto: on when a GPU is present)")
    run.add_argument("--out", default="artifacts", help="artifacts root (default: artifacts/)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    from train.trainer import DEFAULT_ARCH, recipe_defaults

    parser = argparse.ArgumentParser(
        prog="python -m train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    parent = common_options()
    for name, spec in TASKS.items():
        arch = DEFAULT_ARCH[name]
        d = recipe_defaults(name, arch)
        model_input = ("MediaPipe hand landmarks (63 features)" if arch == "landmarks"
                       else f"input {spec.size}px {spec.colour}")
        sub = tasks.add_parser(
            name, parents=[parent], help=spec.description,
            description=f"Train the {name} classifier ({spec.description}). Defaults: --arch "
                        f"{arch}, {d['epochs']} epochs, batch {d['batch_size']}, lr "
                        f"{d['learning_rate']}, {model_input}"
                        f"{', test-time views (--tta)' if d.get('tta') else ''}. Writes "
                        f"artifacts/{name}/: "
                        "model.keras, metrics.json, history.png, confusion.png, logs/ "
                        "(TensorBoard).")
        if name == "digits":
            sub.add_argument("--embedded", action="store_true",
                             help="train on scikit-learn's bundled digits (no files, no internet)")
        if name == "fruits":
            sub.add_argument("--classes", help="comma-separated class folder names (default: the "
                             "classic 16 when present, else every class found)")
    add_images_command(tasks, common_options())
    doctor = tasks.add_parser(
        "doctor", help="devices, strategy, mixed precision, and a short timed training run",
        description="Print what training will run on here (the devices TensorFlow sees, the "
                    "strategy and mixed-precision setting it picks) and time a few real "
                    "training steps. Run it on a GPU box before a long training.")
    doctor.add_argument("--strategy", default="auto", choices=["auto", "mirrored", "multiworker"])
    doctor.add_argument("--mixed-precision", default="auto", choices=["auto", "on", "off"])
    doctor.add_argument("--steps", type=number(int, 1), default=20, help="timed steps (default 20)")
    doctor.add_argument("--batch-size", type=number(int, 1), default=128,
                        help="per replica (default 128)")
    return parser


def add_images_command(tasks, parent: argparse.ArgumentParser) -> None:
    """``python -m train images``: a task of the user's own from any image-folder dataset."""
    sub = tasks.add_parser(
        "images", parents=[parent], help="your own classes from image folders (DIR/<class>/*)",
        description="Train a task of your own from DIR/<class>/* (or DIR/train/<class>/* plus "
                    "DIR/test/<class>/*), e.g. what `python -m device collect` captured. "
                    "Without a test folder, a test split is held out by capture session. The "
                    "recipe adapts to the data's size (a small convnet from scratch; "
                    "--weights imagenet|FILE: a frozen pretrained MobileNetV3-Small). Writes "
                    "artifacts/NAME/; then `python -m export NAME`. A class named 'none' means "
                    "'nothing in view' and is reported as nothing.")
    sub.add_argument("--data", required=True, type=Path, metavar="DIR",
                     help="the image folders: DIR/<class>/* or DIR/{train,test}/<class>/*")
    sub.add_argument("--name", required=True, help="your task's name (artifacts/NAME/)")
    sub.add_argument("--test-split", type=number(float, 0.05, 0.5), default=0.2,
                     metavar="FRACTION",
                     help="without a test folder: the fraction held out, by capture session "
                          "(default 0.2)")
    # A few dozen images cannot spare a validation split worth reading: by default it is
    # held out only from 200 training images on. (The subparsers share their option objects,
    # so the "unset" default is None for every task: see DEFAULT_VAL_SPLIT.)


#: The built-in tasks' validation fraction when --val-split is not given.
DEFAULT_VAL_SPLIT = 0.1
#: Below this many training images a user's task trains on all of them (no validation split).
SMALL_DATA = 200


def train_images(args, config_fields: dict) -> dict:
    """Read and check the folders (no TensorFlow yet: a bad folder fails in a second), then
    train on them."""
    from device.tasks import CUSTOM_SIZE, check_task_name
    from train.data import folders
    from train.trainer import TrainConfig, train

    check_task_name(args.name)
    recorded = {"folder": str(args.data.expanduser().resolve()),
                "test_split": args.test_split, "colour": "rgb"}
    if config_fields["arch"] == "landmarks":
        return train_gestures(args, config_fields, recorded)
    if args.weights and args.arch in (None, "convnet"):
        config_fields["arch"] = "mobilenetv3small"  # pretrained weights need the backbone
    pretrained = config_fields["arch"] == "mobilenetv3small"
    size = args.image_size or (128 if pretrained else CUSTOM_SIZE)
    dataset = folders.load(args.data, args.name, size, test_fraction=args.test_split,
                           seed=args.seed)
    if config_fields["val_split"] is None:
        config_fields["val_split"] = 0.0 if len(dataset.y_train) < SMALL_DATA else 0.1
    config_fields.update(task=args.name, data_dir=args.data.expanduser().resolve(),
                         image_size=size, extra={"images": recorded})
    from device.interrupts import terminate_as_interrupt

    with terminate_as_interrupt():
        return train(TrainConfig(**config_fields), dataset)


def train_gestures(args, config_fields: dict, recorded: dict) -> dict:
    """``--arch landmarks``: the user's own hand gestures on the hand-sign landmark classifier
    (train/hand_trainer.py), from the images' hand landmarks; the folders are checked (and
    split) before TensorFlow loads."""
    from device.tasks import custom_task
    from train.data import folders
    from train.hand_trainer import train_landmarks
    from train.trainer import TrainConfig, resolved

    files = folders.photo_files(args.data, args.test_split, args.seed, quiet=True)
    if config_fields["val_split"] is None:
        config_fields["val_split"] = 0.0 if len(files["train"]) < SMALL_DATA else 0.1
    config_fields.update(task=args.name, data_dir=args.data.expanduser().resolve(),
                         extra={"images": recorded, "hand_variant": args.hand_models})
    config = resolved(TrainConfig(**config_fields), custom_task(args.name, files["labels"]),
                      len(files["train"]))
    from device.interrupts import terminate_as_interrupt

    with terminate_as_interrupt():
        return train_landmarks(config)


def check_early(args) -> None:
    """What argparse cannot see but is wrong before any data or TensorFlow loads: an empty
    --classes list (which would silently mean every class), a --weights file that is not
    there (found otherwise only after 8 s of TensorFlow start-up)."""
    classes = getattr(args, "classes", None)
    if classes is not None and not [c for c in classes.split(",") if c.strip()]:
        raise UserError(f"--classes {classes!r} names no class: list folder names separated by "
                        "commas, or leave it out for every class")
    weights = getattr(args, "weights", None)
    if weights not in (None, "imagenet") and not Path(weights).expanduser().is_file():
        raise UserError(f"--weights file {weights} does not exist: download the Keras "
                        "MobileNetV3-Small ImageNet weights (no-top) and pass their path")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if args.task == "doctor":
        from train.doctor import main as doctor

        try:
            return doctor(args.strategy, args.mixed_precision, args.steps, args.batch_size)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from train.data import resolve_data_dir
    from train.trainer import TrainConfig, train

    try:
        check_early(args)
        if args.task == "images":
            train_images(args, {
                "arch": args.arch, "weights": args.weights, "epochs": args.epochs,
                "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                "label_smoothing": args.label_smoothing, "weight_decay": args.weight_decay,
                "mixup": args.mixup, "ema": args.ema, "val_split": args.val_split,
                "limit_per_class": args.limit_per_class, "seed": args.seed,
                "strategy": args.strategy, "mixed_precision": args.mixed_precision,
                "tta": args.tta, "out_dir": Path(args.out)})
            return 0
        embedded = getattr(args, "embedded", False)
        classes = getattr(args, "classes", None)
        config = TrainConfig(
            task=args.task, data_dir=None if embedded else resolve_data_dir(args.data_dir),
            embedded=embedded,
            classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
            arch=args.arch, weights=args.weights, image_size=args.image_size, epochs=args.epochs,
            batch_size=args.batch_size, learning_rate=args.learning_rate,
            label_smoothing=args.label_smoothing, weight_decay=args.weight_decay,
            mixup=args.mixup, ema=args.ema,
            val_split=DEFAULT_VAL_SPLIT if args.val_split is None else args.val_split,
            limit_per_class=args.limit_per_class, seed=args.seed, strategy=args.strategy,
            mixed_precision=args.mixed_precision, tta=args.tta, out_dir=Path(args.out),
            extra={"hand_variant": args.hand_models})
        from device.interrupts import terminate_as_interrupt

        with terminate_as_interrupt():
            train(config)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: previous artifacts left as they were", file=sys.stderr)
        return 130
    return 0
