"""``train handsigns --arch landmarks``: a small classifier on MediaPipe hand landmarks.

The photos' landmarks come from the device's own tracker (``train.landmarks``, cached), turned
into features by the device's own ``device.hands.features``; the classifier is a small MLP
trained with augmentation in landmark space. A photo where no hand is found cannot be trained
on, so it is left out of training, and in the test accuracy it counts as an error: the device
would answer "no hand" for it, and the user would see no sign.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from device.errors import UserError
from device.hands import features as hand_features

#: The landmark recipe (train/trainer.py DEFAULTS holds the image ones).
LANDMARK_DEFAULTS = {"epochs": 40, "batch_size": 128, "learning_rate": 3e-3,
                     "label_smoothing": 0.05, "weight_decay": 1e-4, "mixup": 0.0, "ema": 0.0}
#: Augmented copies of each training hand per epoch's worth of data.
AUGMENT_COPIES = 8
#: Views of one training photo learnt from, at most: the first in the tracker's order (palm
#: crops, then whole-photo views by presence, then views around a small hand; each re-cropped).
#: The device fuses all of them (up to 52), but a small hand's photo would otherwise weigh
#: up to twice as much as a tight one. Measured (clip-grouped validation / test, one seed):
#: 28 -> 89.2 / 93.7 %, all 52 -> 88.7 / 92.2 % (each photo weighted equally: 88.7 / 93.0 %)
#: and 1.6x the training time.
TRAINING_VIEWS = 28


def augment(points: np.ndarray, rng: np.random.Generator, copies: int) -> np.ndarray:
    """``copies`` randomly varied versions of each canonical hand (N, 21, 3), in landmark space:
    what the same sign looks like to the tracker from another angle, size or hand.

    - a small turn in the image plane (±15°: the upright normalisation is never exact) and out
      of it (±20° about the vertical and horizontal axes: the hand turned towards the camera);
    - a different width/height (±10 % each: perspective and the tracker's box);
    - jitter of every point (2 % of the palm: landmark noise);
    - mirroring as the other hand (half of them: the handedness call can be wrong, and the signs
      do not change when mirrored)."""
    n = len(points) * copies
    x = np.repeat(points, copies, axis=0).astype(np.float64)

    def rotation(axis: int, angle: np.ndarray) -> np.ndarray:
        c, s = np.cos(angle), np.sin(angle)
        m = np.zeros((len(angle), 3, 3))
        i, j = [k for k in range(3) if k != axis]
        m[:, axis, axis] = 1.0
        m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c, -s, s, c
        return m

    limits = np.radians([20.0, 20.0, 15.0])  # about x (tilt), y (turn), z (in-plane)
    for axis in range(3):
        turn = rotation(axis, rng.uniform(-limits[axis], limits[axis], n))
        x = np.einsum("nij,npj->npi", turn, x)
    x[:, :, :2] *= rng.uniform(0.9, 1.1, (n, 1, 2))
    x += rng.normal(0.0, 0.02, x.shape)
    mirror = rng.random(n) < 0.5
    x[mirror, :, 0] *= -1.0
    return x.reshape(n, -1).astype(np.float32)


def build_classifier(n_classes: int, seed: int):
    """63 -> 128 -> 64 -> classes, with dropout: ~17 k parameters, microseconds per hand."""
    import keras

    initializer = keras.initializers.GlorotUniform(seed=seed)
    inputs = keras.Input((hand_features.SIZE,), name="landmarks")
    x = keras.layers.Dense(128, activation="relu", kernel_initializer=initializer)(inputs)
    x = keras.layers.Dropout(0.2, seed=seed)(x)
    x = keras.layers.Dense(64, activation="relu", kernel_initializer=initializer)(x)
    x = keras.layers.Dropout(0.1, seed=seed + 1)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="landmark_classifier")


def with_misses_metrics(y: np.ndarray, probs: np.ndarray, found: np.ndarray,
                        labels: list[str]) -> dict:
    """The test metrics over every photo, a photo without a hand counting as an error.

    Same keys as ``train.report.classification_metrics`` (the confusion matrix covers the
    photos with a hand), plus ``no_hand`` per class. Loss: uniform probabilities for a miss."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    n = len(labels)
    full = np.full((len(y), n), 1.0 / n, np.float32)
    full[found] = probs
    predicted = np.where(found, full.argmax(1), n)  # n = "no hand", never a class
    # What a user sees (the runner's defaults): below the bundle's min_confidence "unsure".
    shown = np.where(found & (full.max(1) >= hand_features.MIN_CONFIDENCE), predicted, n)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=range(n), zero_division=0)
    loss = float(-np.mean(np.log(np.clip(full[np.arange(len(y)), y], 1e-7, 1.0))))
    return {
        "accuracy": float(np.mean(predicted == y)),
        "loss": loss,
        "per_class": {label: {"precision": float(precision[i]), "recall": float(recall[i]),
                              "f1": float(f1[i]), "support": int(support[i])}
                      for i, label in enumerate(labels)},
        "confusion_matrix": confusion_matrix(y[found], predicted[found],
                                             labels=range(n)).tolist(),
        "no_hand": {label: int(np.sum(~found & (y == i))) for i, label in enumerate(labels)},
        "accuracy_with_hand": float(np.mean(predicted[found] == y[found])) if found.any() else 0.0,
        "accuracy_as_shown": float(np.mean(shown == y)),
    }


def errors_by_source(groups: np.ndarray, y: np.ndarray, predicted: np.ndarray,
                     found: np.ndarray) -> dict:
    """Per test source (clip or photo session) with an error: photos, misclassified, no hand."""
    table = {}
    for group in np.unique(groups):
        mask = groups == group
        wrong = int(np.sum(mask & found & (predicted != y)))
        missing = int(np.sum(mask & ~found))
        if wrong or missing:
            table[str(group)] = {"photos": int(mask.sum()), "wrong": wrong, "no_hand": missing}
    return dict(sorted(table.items(), key=lambda kv: -(kv[1]["wrong"] + kv[1]["no_hand"])))


#: Temperatures tried when calibrating (a factor of 4 either way, log-spaced).
TEMPERATURES = np.geomspace(0.25, 4.0, 41)
#: Fewer validation photos with a hand than this: too few to fit a temperature; keep 1.
MIN_CALIBRATION_PHOTOS = 30


def fused_nll(logits: np.ndarray, owner: np.ndarray, weights: np.ndarray, y: np.ndarray,
              temperature: float) -> float:
    """Mean negative log-likelihood of the true class over photos, each photo's views'
    ``softmax(logits / temperature)`` fused by the device's own ``features.fuse``."""
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(1, keepdims=True)
    photos = np.unique(owner)
    fused = np.stack([hand_features.fuse(probs[owner == k], weights[owner == k])
                      for k in photos])
    return float(-np.mean(np.log(np.clip(fused[np.arange(len(photos)), y[photos]], 1e-7, 1.0))))


def calibrate_temperature(model, lm, rows: np.ndarray, y: np.ndarray) -> dict:
    """Temperature scaling (Guo et al., 2017) on the validation photos, folded into the model.

    Averaging several views and label smoothing both leave the classifier's probabilities
    less sure than it is right, so the bundle's ``min_confidence`` would call right answers
    ``unsure``. One scalar T, chosen to minimise the fused negative log-likelihood of the
    clip-grouped validation photos, divides the last layer's weights and bias: the model then
    outputs ``softmax(logits / T)``, the argmax never changes, and the threshold means what it
    says. Without enough validation photos (a small dataset of your own) T stays 1."""
    import keras

    x, owner, weights = lm.views(rows)
    photos = len(np.unique(owner)) if len(owner) else 0
    if photos < MIN_CALIBRATION_PHOTOS:
        return {"temperature": 1.0, "photos": photos,
                "note": f"fewer than {MIN_CALIBRATION_PHOTOS} validation photos with a hand: "
                        "not calibrated"}
    dense = model.get_layer("probs")
    kernel, bias = dense.get_weights()
    hidden = keras.Model(model.inputs, dense.input).predict(x, batch_size=2048, verbose=0)
    logits = hidden @ kernel + bias
    losses = [fused_nll(logits, owner, weights, y, t) for t in TEMPERATURES]
    best = float(TEMPERATURES[int(np.argmin(losses))])
    dense.set_weights([kernel / best, bias / best])
    return {"temperature": round(best, 4), "photos": photos,
            "validation_nll_before": round(fused_nll(logits, owner, weights, y, 1.0), 4),
            "validation_nll_after": round(min(losses), 4)}


def require_hand_models(variant: str) -> None:
    import hand_models

    try:
        hand_models.model_path("palm", variant)
    except UserError as exc:
        raise UserError(f"--arch landmarks needs MediaPipe's hand models: {exc}") from None


def limited(files: dict, limit: int | None, seed: int) -> dict:
    """``files`` with at most ``limit`` training photos per class (seeded), chosen before the
    landmarks are found: extraction is most of a short run's time (tests, smoke runs)."""
    if not limit:
        return files
    from train.trainer import limit_per_class
    keep, y_train, groups = limit_per_class(np.arange(len(files["train"])), files["y_train"],
                                            files["groups"], limit, seed)
    return {**files, "train": [files["train"][i] for i in keep], "y_train": y_train,
            "groups": groups}


def train_landmarks(config, make_tracker=None, landmark_root: Path | None = None) -> dict:
    """Train the landmark classifier of ``config`` (a resolved TrainConfig); write the same
    artifacts as the image route (model.keras, metrics.json, plots)."""
    images = (config.extra or {}).get("images")  # a user's own gestures (train images)
    if config.task != "handsigns" and not images:
        raise UserError("--arch landmarks is for the handsigns task, or your own gestures "
                        "(python -m train images --data DIR --name NAME --arch landmarks)")
    variant = config.extra.get("hand_variant", "full")
    require_hand_models(variant)  # before anything slow: the one line that says how to fetch
    import keras
    import tensorflow as tf

    from train.data import resolve_data_dir
    from train.data.handsigns import photo_files
    from train.landmarks import photo_landmarks
    from train.report import versions
    from train.trainer import save_artifacts, split_validation, validation_kind

    started = time.time()
    if images:
        from train.data.folders import photo_files as folder_files
        files = folder_files(Path(images["folder"]), images["test_split"], config.seed)
    else:
        files = photo_files(config.data_dir or resolve_data_dir(None))
    labels = files["labels"]
    files = limited(files, config.limit_per_class, config.seed)
    train_lm, extraction = photo_landmarks(files["train"], variant, make_tracker, landmark_root)
    test_lm, _ = photo_landmarks(files["test"], variant, make_tracker, landmark_root)
    extraction_seconds = time.time() - started

    index = np.arange(len(files["train"]))
    y_all, groups = files["y_train"], files["groups"]
    train_index, val_index, y_train, y_val = split_validation(index, y_all, groups,
                                                              config.val_split, config.seed)
    keep_train = train_lm.found[train_index]
    keep_val = train_lm.found[val_index]
    no_hand = {"train": int(np.sum(~keep_train)), "validation": int(np.sum(~keep_val)),
               "test": test_lm.missing}
    print(f"{config.task} (landmarks): {len(train_index)} train / {len(val_index)} validation / "
          f"{len(files['test'])} test photos; no hand found in {no_hand['train']} / "
          f"{no_hand['validation']} / {no_hand['test']} (left out of training; errors in the "
          "validation and test accuracy)", flush=True)

    keras.mixed_precision.set_global_policy("float32")  # a 17 k MLP: float16 gains nothing
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    # The views the tracker accepted of each training photo (the device classifies a still
    # photo's views and fuses them): real variation of the landmarks, on top of augmentation.
    plain, owner, _ = train_lm.views(train_index, limit=TRAINING_VIEWS)
    points = plain.reshape(-1, hand_features.POINTS, 3)
    x_train = augment(points, rng, AUGMENT_COPIES)
    y_aug = np.repeat(y_train[owner], AUGMENT_COPIES)
    # The plain features too: the real hands themselves, unaugmented, are part of every epoch.
    x_train = np.concatenate([plain, x_train])
    y_aug = np.concatenate([y_train[owner], y_aug])
    n_classes = len(labels)
    x_val, val_owner, _ = train_lm.views(val_index)

    model = build_classifier(n_classes, config.seed)
    steps = config.epochs * int(np.ceil(len(x_train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - steps // 20), warmup_target=config.learning_rate,
        warmup_steps=max(1, steps // 20))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay,
                                                   use_ema=config.ema > 0,
                                                   ema_momentum=config.ema or 0.99),
                  loss=keras.losses.CategoricalCrossentropy(
                      label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])
    eye = np.eye(n_classes, dtype=np.float32)
    validation = (x_val, eye[y_val[val_owner]]) if len(x_val) else None
    out = Path(config.out_dir) / config.task
    verbose = config.verbose if config.verbose != "auto" else 2
    fit_started = time.time()
    history = model.fit(x_train, eye[y_aug], batch_size=config.batch_size, epochs=config.epochs,
                        validation_data=validation, shuffle=True, verbose=verbose,
                        callbacks=[keras.callbacks.TensorBoard(log_dir=str(out / "logs"))])
    train_seconds = time.time() - fit_started
    calibration = calibrate_temperature(model, train_lm, val_index, y_val)
    print(f"{config.task} (landmarks): temperature {calibration['temperature']} "
          f"({calibration.get('note') or 'fitted on the validation photos'})", flush=True)

    def evaluate(lm, rows, y):
        """As the device answers: each found photo's views classified and fused."""
        found = lm.found[rows]
        probs = lm.fused_probs(lambda x: model.predict(x, batch_size=256, verbose=0), rows) \
            if found.any() else np.zeros((0, n_classes), np.float32)
        return with_misses_metrics(y, probs, found, labels), probs, found

    all_test = np.arange(len(files["test"]))
    test, test_probs, test_found = evaluate(test_lm, all_test, files["y_test"])
    val = evaluate(train_lm, val_index, y_val)[0] if len(val_index) else None
    predicted = np.full(len(all_test), -1)
    predicted[test_found] = test_probs.argmax(1)
    metrics = {
        "task": config.task,
        "labels": labels,
        # scale/offset 1/0: device code that scales stored inputs (samples) leaves features be.
        "preprocessing": {"camera": "landmarks", "features": hand_features.VERSION,
                          "size": [hand_features.SIZE], "layout": "NC", "scale": 1.0,
                          "offset": 0.0, "hand_models": variant},
        "arch": "landmarks",
        "parameters": int(model.count_params()),
        "test": test,
        "validation_accuracy": val["accuracy"] if val else None,
        "validation": val,
        "no_hand": no_hand,
        "calibration": calibration,
        "errors_by_source": errors_by_source(files["test_groups"], files["y_test"], predicted,
                                             test_found),
        "landmarks": extraction,
        "dataset": {"source": files["source"], "notes": ["photos' landmarks by the device's "
                                                        "hand tracker (still-image mode)"],
                    "train": {label: int(np.sum(files["y_train"] == i))
                              for i, label in enumerate(labels)},
                    "test": {label: int(np.sum(files["y_test"] == i))
                             for i, label in enumerate(labels)},
                    "train_total": len(files["train"]), "test_total": len(files["test"]),
                    "validation_total": int(len(val_index)),
                    "validation_split": validation_kind(groups, config.val_split),
                    "test_split": files.get("split")},
        "training_seconds": round(train_seconds, 1),
        "landmark_seconds": round(extraction_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "devices": [d.name for d in tf.config.list_physical_devices()],
        "mixed_precision": False,
        "replicas": 1,
        "versions": versions(),
    }
    save_artifacts(out, model, metrics, history.history)
    print(f"{config.task} (landmarks): test accuracy {test['accuracy']:.4f} over all "
          f"{len(all_test)} photos ({no_hand['test']} without a hand count as errors; "
          f"{test['accuracy_with_hand']:.4f} on the photos with a hand; "
          f"{test['accuracy_as_shown']:.4f} as the runner shows it, 'unsure' an error)"
          + (f", validation {val['accuracy']:.4f}" if val else "")
          + f", {train_seconds:.0f} s of training -> {out}/model.keras", flush=True)
    return metrics
