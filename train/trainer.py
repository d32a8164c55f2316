"""One training run: data -> split -> model -> fit -> test metrics -> artifacts/<task>/.

Nothing is written until training and evaluation succeed, and each file is written atomically,
so a failed or interrupted run leaves the previous artifacts as they were.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from device.atomic import atomic_path, write_json
from device.errors import UserError
from device.preprocess import to_input
from device.tasks import IMAGES, get_task
from train.data import Dataset, load_dataset


@dataclass
class TrainConfig:
    """Everything that decides a run; recorded in metrics.json so a result can be reproduced."""

    task: str
    data_dir: Path | None = None
    embedded: bool = False
    classes: list[str] | None = None
    arch: str | None = None  # None: the task's default (DEFAULT_ARCH)
    weights: str | None = None
    image_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    label_smoothing: float | None = None
    weight_decay: float | None = None
    mixup: float | None = None
    ema: float | None = None
    val_split: float = 0.1
    limit_per_class: int | None = None
    seed: int = 42
    strategy: str = "auto"
    mixed_precision: str = "auto"
    tta: bool | None = None  # None: the recipe's default (digits pair: on)
    out_dir: Path = Path("artifacts")
    verbose: int | str = "auto"
    extra: dict = field(default_factory=dict)


#: Per-task recipe defaults; each is overridable on the command line.
DEFAULTS = {
    "digits": {"epochs": 12, "batch_size": 128, "learning_rate": 2e-3, "label_smoothing": 0.0,
               "weight_decay": 1e-4, "mixup": 0.0, "ema": 0.0},
    "fruits": {"epochs": 15, "batch_size": 64, "learning_rate": 2e-3, "label_smoothing": 0.0,
               "weight_decay": 1e-4, "mixup": 0.0, "ema": 0.0},
    # Measured on the clip-disjoint test split (270 images), all with --val-split 0: at 64 px
    # without a stem 81.1 % and 81.5 % (two runs); 96 px behind a stride-2 stem (train/models.py)
    # 85.6 % (seeds 42 and 7). At 64 px: weight decay 0.05 + MixUp 0.2 76.7 %; depthwise-separable
    # blocks 3-4 75.6 %; random quarter turns of 30 % of the images 78.1 %.
    "handsigns": {"epochs": 100, "batch_size": 32, "learning_rate": 2e-3, "label_smoothing": 0.1,
                  "weight_decay": 1e-4, "mixup": 0.0, "ema": 0.998},
}


#: The architecture a task trains when ``--arch`` is not given (by recipe family). Hand signs:
#: the landmark classifier (87.4 % on the 270 test photos with the 14 no-hand photos counted
#: as errors, 81.1 % on the clip-grouped validation split; 86.7 % with --val-split 0) beat the
#: 96 px CNN (83.7 % test / 74.1 % validation; 85.6 % with --val-split 0); the CNN stays as
#: --arch convnet. Digits: the pair of 37 k convnets (99.40-99.50 % on the 9,000 test digits in
#: 249-300 s of training, a 95 KB int8 file; 99.49-99.56 % with its two test-time views, see
#: ARCH_DEFAULTS) beat the 468 k convnet (99.32-99.38 %, 821-1,250 s, 472 KB), which stays as
#: --arch convnet.
DEFAULT_ARCH = {"digits": "convnet-pair", "fruits": "convnet", "handsigns": "landmarks",
                IMAGES: "convnet"}


def images_recipe(n_train: int | None, pretrained: bool) -> dict:
    """Defaults for a user's own image folders (``python -m train images``), by data size.

    A few dozen captures per class must not train for 3 epochs of 5 steps, and ten thousand
    must not train for 150: the epoch count aims at a fixed number of optimiser steps
    (600 from scratch; 400 for a frozen pretrained backbone, which only fits its head),
    within bounds. Batches grow with the data. On the collect end-to-end test (3 fruits +
    none, 80 training captures) 150 epochs (750 steps) reached 100 % on the held-out session
    but took 8 minutes on two busy cores, most of it per-epoch overhead; 60 epochs: see
    tests/test_custom_e2e.py.
    """
    n = max(1, n_train or 1)
    batch = 16 if n < 300 else 32 if n < 1500 else 64
    steps_per_epoch = int(np.ceil(n / batch))
    target, low, high = (400, 5, 40) if pretrained else (600, 10, 60)
    return {"epochs": int(np.clip(round(target / steps_per_epoch), low, high)),
            "batch_size": batch, "learning_rate": 1e-3 if pretrained else 2e-3,
            "label_smoothing": 0.1, "weight_decay": 1e-4, "mixup": 0.0, "ema": 0.0}


#: Where an architecture needs its own recipe: (family, arch) -> the keys it changes. Epochs
#: of a pair are per member. Digits pair: a higher peak rate and decay suit its 37 k members
#: (probe on the 9,000 test digits: one member 99.40 % after 6 epochs and after 12), and its
#: saved model averages the image and a copy 7 % smaller (train/models.py
#: with_scale_averaging; four `make train` runs: 99.38-99.48 % -> 99.49-99.56 %, median 99.51 %).
ARCH_DEFAULTS = {
    ("digits", "convnet-pair"): {"epochs": 6, "learning_rate": 4e-3, "weight_decay": 5e-4,
                                 "tta": True},
}


def recipe_defaults(task, arch: str, n_train: int | None = None,
                    weights: str | None = None) -> dict:
    """The recipe for ``task`` trained as ``arch``: the landmark route has its own, and a
    user's image task adapts its recipe to its data."""
    if arch == "landmarks":
        from train.hand_trainer import LANDMARK_DEFAULTS
        return LANDMARK_DEFAULTS
    family = task if isinstance(task, str) else task.family
    if family == IMAGES:
        return images_recipe(n_train, weights is not None)
    return {**DEFAULTS[family], **ARCH_DEFAULTS.get((family, arch), {})}


def resolved(config: TrainConfig, task=None, n_train: int | None = None) -> TrainConfig:
    """Fill the unset recipe fields from the task family's defaults and the task's input size."""
    task = task or get_task(config.task)
    config.arch = config.arch or DEFAULT_ARCH[task.family]
    if config.arch == "landmarks" and task.family not in ("handsigns", IMAGES):
        raise UserError(f"--arch landmarks is for hand signs only, not {task.name}: use convnet "
                        "or mobilenetv3small")
    for key, value in recipe_defaults(task, config.arch, n_train, config.weights).items():
        if getattr(config, key) is None:
            setattr(config, key, value)
    config.tta = bool(config.tta)  # the recipes that want test-time views set it above
    config.image_size = config.image_size or task.size
    if config.epochs < 1 or config.batch_size < 1 or config.learning_rate <= 0:
        raise UserError("--epochs, --batch-size and --lr must be positive")
    if not 0.0 <= config.val_split < 0.5:
        raise UserError(f"--val-split {config.val_split} must be from 0 (no validation: train on "
                        "every training image, once the recipe is settled) to below 0.5")
    return config


def data_flag(config: TrainConfig) -> str:
    """The flag that chose the data, for error lines."""
    if config.classes:
        return "--classes"
    return "--embedded" if config.embedded else "--data-dir"


def check_trainable(data: Dataset, config: TrainConfig) -> None:
    """Refuse data no classifier can learn from: fewer than two classes (a one-class model
    answers that class at "100 %" whatever it sees), or a class with no training or no test
    images (an empty class folder)."""
    flag = data_flag(config)
    if len(data.labels) < 2:
        raise UserError(f"{flag}: the dataset has {len(data.labels)} class(es) "
                        f"({', '.join(data.labels) or 'none'}); a classifier needs at least two")
    for split, y in (("training", data.y_train), ("test", data.y_test)):
        counts = np.bincount(np.asarray(y, np.int64), minlength=len(data.labels))
        empty = [label for label, n in zip(data.labels, counts) if n == 0]
        if empty:
            raise UserError(f"{flag}: class(es) {', '.join(empty)} have no {split} images: "
                            "add images or leave the class out")


def check_validation_size(y_train: np.ndarray, classes: int, val_split: float) -> None:
    """A stratified split needs at least one validation image per class."""
    if val_split > 0 and len(y_train) * val_split < classes:
        raise UserError(f"--val-split {val_split}: {len(y_train)} training images are too few to "
                        f"hold out a validation image for each of {classes} classes (use "
                        "--val-split 0, a larger --limit-per-class, or more images)")


def limit_per_class(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, limit: int | None,
                    seed: int):
    """At most ``limit`` images per class, seeded: quick runs (tests, smoke) stay balanced."""
    if not limit:
        return x, y, groups
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:limit] for c in np.unique(y)])
    keep.sort()
    return x[keep], y[keep], None if groups is None else groups[keep]


def groups_usable(groups: np.ndarray | None, fraction: float) -> bool:
    """Whether there are enough distinct clips to hold a ``fraction`` of them out whole."""
    return groups is not None and fraction > 0 and len(np.unique(groups)) >= round(1 / fraction)


def validation_kind(groups: np.ndarray | None, fraction: float) -> str:
    """How :func:`split_validation` holds data out, in words for metrics.json."""
    if fraction == 0:
        return "none"
    return "clip-grouped" if groups_usable(groups, fraction) else "stratified"


def split_validation(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, fraction: float,
                     seed: int):
    """A stratified, seeded validation split carved from the training data (never the test set).

    With ``groups`` (the clip each image came from) whole clips go to one side, so validation
    measures what the test split measures: new people and scenes, not neighbouring frames.
    """
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    if fraction == 0:
        return x, x[:0], y, y[:0]
    if not groups_usable(groups, fraction):
        return train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y)
    folds = StratifiedGroupKFold(n_splits=round(1 / fraction), shuffle=True, random_state=seed)
    train_index, val_index = next(folds.split(x, y, groups))
    return x[train_index], x[val_index], y[train_index], y[val_index]


def choose_strategy(name: str):
    """``auto``: MirroredStrategy with more than one GPU, else the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        from train.distributed import cluster_config

        cluster_config()  # one clear line for a missing or malformed TF_CONFIG
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown --strategy {name!r}: choose auto, mirrored or multiworker")


def use_mixed_precision(setting: str) -> bool:
    """Mixed float16 only helps on a GPU with tensor cores; on a CPU it slows training down."""
    import tensorflow as tf

    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "on"


def mixup_batch(images, labels, alpha: float, seed: int):
    """MixUp: each image blended with another of the batch, labels blended alike; the weight
    comes from Beta(alpha, alpha) (two Gamma draws), so most pairs stay close to one image."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    first = tf.random.gamma([batch], alpha, seed=seed)
    second = tf.random.gamma([batch], alpha, seed=seed + 1)
    weight = first / (first + second)
    partner = tf.random.shuffle(tf.range(batch), seed=seed + 2)
    image_weight = tf.reshape(weight, [-1, 1, 1, 1])
    label_weight = tf.reshape(weight, [-1, 1])
    return (image_weight * images + (1 - image_weight) * tf.gather(images, partner),
            label_weight * labels + (1 - label_weight) * tf.gather(labels, partner))


def make_datasets(x_train, y_train, x_val, y_val, n_classes: int, batch_size: int, seed: int,
                  augment=None, mixup: float = 0.0):
    """tf.data pipelines. With ``augment`` (a Keras preprocessing model) the training batches are
    augmented inside tf.data, in parallel and ahead of the training step: on a CPU that overlaps
    augmentation with training instead of serialising them. ``mixup`` > 0 blends pairs."""
    import tensorflow as tf

    def pipeline(x, y, training: bool):
        ds = tf.data.Dataset.from_tensor_slices((x, np.eye(n_classes, dtype=np.float32)[y]))
        if training:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
        if training and augment is not None:
            ds = ds.map(lambda images, labels: (augment(images, training=True), labels),
                        num_parallel_calls=tf.data.AUTOTUNE)
        if training and mixup > 0:
            ds = ds.map(lambda images, labels: mixup_batch(images, labels, mixup, seed),
                        num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    return pipeline(x_train, y_train, True), (pipeline(x_val, y_val, False) if len(x_val) else None)


def float32_copy(model, build):
    """Rebuild ``model`` under the float32 policy with the same weights, for export."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    twin = build()
    twin.set_weights(model.get_weights())
    return twin


def validation_accuracy(model, x_val, y_val, spec: dict, history: dict, members: int,
                        views: bool = False):
    """The last epoch's validation accuracy; a pair's (or a model with test-time ``views``) is
    measured on the saved model, as the history saw its last member alone, without views."""
    if not len(x_val):
        return None
    if members > 1 or views:
        probs = model.predict(to_input(x_val, spec), batch_size=256, verbose=0)
        return float(np.mean(probs.argmax(1) == y_val))
    return float(history["val_accuracy"][-1]) if "val_accuracy" in history else None


def fit_member(member, config: TrainConfig, strategy, family: str, spec: dict, train_xy,
               val_xy, n_classes: int, batch_size: int, peak_lr: float, augment_in_model: bool,
               seed: int, multiworker: bool, verbose, logs: Path) -> dict:
    """Compile ``member`` with a fresh warm-up + cosine schedule and fit it for
    ``config.epochs`` on batches drawn with ``seed``; return its history."""
    import keras

    from train.distributed import fit_multiworker
    from train.models import augmentation, with_augmentation

    train_ds, val_ds = make_datasets(
        to_input(train_xy[0], spec), train_xy[1], to_input(val_xy[0], spec), val_xy[1],
        n_classes, batch_size, seed, None if augment_in_model else augmentation(family, seed),
        config.mixup)
    steps = config.epochs * int(np.ceil(len(train_xy[0]) / batch_size))
    with strategy.scope():
        model = with_augmentation(member, family, seed) if augment_in_model else member
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, steps - steps // 20), warmup_target=peak_lr,
            warmup_steps=max(1, steps // 20))
        # EMA: Keras swaps the averaged weights in when fit() ends, so they are what is saved.
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay,
                                           use_ema=config.ema > 0,
                                           ema_momentum=config.ema or 0.99)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.CategoricalCrossentropy(
                          label_smoothing=config.label_smoothing),
                      metrics=["accuracy"])
    if multiworker:
        return fit_multiworker(model, strategy, train_ds, val_ds, batch_size, config.epochs,
                               config.label_smoothing)
    return model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, verbose=verbose,
                     callbacks=[keras.callbacks.TensorBoard(log_dir=str(logs))]).history


def train(config: TrainConfig, dataset: Dataset | None = None) -> dict:
    """Run one training; return metrics (also written to ``out_dir/<task>/metrics.json``)."""
    # A user's task is known by its dataset (labels, size); a built-in one by its name.
    task = get_task(config.task, dataset.labels if dataset is not None else None,
                    config.image_size)
    config = resolved(config, task, len(dataset.y_train) if dataset is not None else None)
    if config.arch == "landmarks":
        from train.hand_trainer import train_landmarks
        return train_landmarks(config)
    spec = task.preprocessing(config.image_size)

    # Everything a user can get wrong in the data is checked before TensorFlow loads (8-13 s).
    started = time.time()
    data = dataset or load_dataset(task.name, config.data_dir, config.image_size, config.classes,
                                   config.embedded)
    check_trainable(data, config)
    x_all, y_all, groups = limit_per_class(data.x_train, data.y_train, data.groups_train,
                                           config.limit_per_class, config.seed)
    check_validation_size(y_all, len(data.labels), config.val_split)
    x_train, x_val, y_train, y_val = split_validation(x_all, y_all, groups, config.val_split,
                                                      config.seed)

    import keras
    import tensorflow as tf

    strategy = choose_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    n_classes = len(data.labels)
    print(f"{task.name}: {len(x_train)} train / {len(x_val)} validation / {len(data.x_test)} test "
          f"images, {n_classes} classes, input {spec['size'][0]}x{spec['size'][1]}x"
          f"{spec['channels']} from {data.source}", flush=True)

    mixed = use_mixed_precision(config.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    input_shape = (*spec["size"], spec["channels"])

    def build():
        from train.models import build_model, freeze_backbone
        model = build_model(task.family, config.arch, input_shape, n_classes, config.weights)
        # A user's few dozen photos per class cannot re-train a pretrained backbone without
        # wrecking it: only the head learns (transfer learning).
        return freeze_backbone(model) if task.family == IMAGES and config.weights else model

    from train.models import pair_members

    # On a GPU the augmentation layers run inside the model, on the accelerator; on a CPU they
    # run in the tf.data pipeline, on the spare core, while the previous batch trains.
    augment_in_model = bool(tf.config.list_physical_devices("GPU"))
    batch_size = config.batch_size * strategy.num_replicas_in_sync
    # --batch-size and --lr are per replica: R replicas (GPUs, workers) train on an R times
    # larger global batch at an R times higher peak rate (the linear scaling rule), reached
    # after the schedule's 5 % warm-up.
    peak_lr = config.learning_rate * strategy.num_replicas_in_sync
    with strategy.scope():
        core = build()
    core.summary(print_fn=lambda line, **_: print(line), line_length=90)

    from train.distributed import is_chief, is_multiworker

    multiworker = is_multiworker(strategy)
    out = Path(config.out_dir) / task.name
    logs = out / "logs"
    verbose = config.verbose if config.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
    # A pair (--arch convnet-pair) trains its members one after the other, each on its own
    # shuffle and augmentation draw; any other model is its own single member.
    members = pair_members(core)
    history: dict[str, list] = {}
    fit_started = time.time()
    for index, member in enumerate(members):
        if len(members) > 1:
            print(f"{task.name}: member {index + 1} of {len(members)} ({member.name}), "
                  f"{config.epochs} epochs", flush=True)
        fitted = fit_member(member, config, strategy, task.family, spec, (x_train, y_train),
                            (x_val, y_val), n_classes, batch_size, peak_lr, augment_in_model,
                            config.seed + index, multiworker, verbose, logs)
        for key, values in fitted.items():
            history.setdefault(key, []).extend(values)
    train_seconds = time.time() - fit_started

    # A model built outside the strategy (and in float32) is what gets evaluated and saved.
    final = float32_copy(core, build) if mixed or multiworker else core
    if config.tta:
        from train.models import with_test_time_views
        final = with_test_time_views(final, task.family)
    probs = final.predict(to_input(data.x_test, spec), batch_size=256, verbose=0)
    from train.report import classification_metrics, versions

    test = classification_metrics(data.y_test, probs, data.labels)
    metrics = {
        "task": task.name,
        "recipe": task.family,
        "labels": data.labels,
        "preprocessing": spec,
        "arch": config.arch,
        "parameters": int(final.count_params()),
        "test": test,
        "validation_accuracy": validation_accuracy(final, x_val, y_val, spec, history,
                                                   len(members), config.tta),
        "dataset": {"source": data.source, "notes": data.notes, **data.counts(),
                    "validation_total": int(len(x_val)),
                    "validation_split": validation_kind(groups, config.val_split),
                    "test_split": getattr(data, "split", None)},
        "training_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "devices": [d.name for d in tf.config.list_physical_devices()],
        "mixed_precision": mixed,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch_size": batch_size,
        "peak_learning_rate": peak_lr,
        "versions": versions(),
    }
    if len(members) > 1:  # the bundle's pipeline (export copies it): averaged answers
        from device.pipeline import AVERAGED_MIN_CONFIDENCE
        metrics["pipeline"] = {"kind": "image", "min_confidence": AVERAGED_MIN_CONFIDENCE}
    if multiworker and not is_chief():  # every worker trains; only the chief writes
        print(f"{task.name}: worker done, test accuracy {test['accuracy']:.4f} (the chief "
              "writes the artifacts)", flush=True)
        return metrics
    save_artifacts(out, final, metrics, history)
    print(f"{task.name}: test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) after "
          f"{train_seconds:.0f} s of training -> {out}/model.keras", flush=True)
    return metrics


def save_artifacts(out: Path, model, metrics: dict, history: dict) -> None:
    """model.keras, metrics.json and the two plots, each atomically; the model goes first so a
    metrics.json on disk always describes the model beside it. Nothing is written if a Ctrl-C or
    SIGTERM came during training, even one that library code swallowed."""
    from device.interrupts import raise_if_interrupted
    from train.report import plot_confusion, plot_history

    raise_if_interrupted()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)
    write_json(out / "metrics.json", metrics)
    plot_history(history, out / "history.png")
    plot_confusion(metrics["test"]["confusion_matrix"], metrics["labels"], out / "confusion.png",
                   f"{metrics['task']}: test accuracy {metrics['test']['accuracy']:.2%}")
