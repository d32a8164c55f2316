"""Which test-time views help a trained digits model: chosen on validation, reported on test.

    DATA_DIR=../shared/datasets python bench/digits_views.py artifacts/digits/model.keras [...]

For each saved digits model (a model with baked-in views is measured on its core), prints the
accuracy on the validation split (the 10 % the trainer holds out with seed 42) and on the
9,000 test digits of the image alone and of averages over views: the digit shrunk or enlarged
by a pixel or two a side, and one-pixel shifts. This is how the digits default's view (shrunk
by a pixel a side, train/models.py ``with_scale_averaging``) was chosen, on validation only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: view name -> (kind, amount): "shrink"/"enlarge" by ``amount`` pixels a side, or a shift.
VIEWS = {"image": ("shift", (0, 0)), "shrink1": ("shrink", 1), "shrink2": ("shrink", 2),
         "enlarge1": ("enlarge", 1), "enlarge2": ("enlarge", 2), "right": ("shift", (1, 0)),
         "left": ("shift", (-1, 0)), "down": ("shift", (0, 1)), "up": ("shift", (0, -1))}
COMBINATIONS = {
    "image alone": ["image"], "enlarged 1 px alone": ["enlarge1"],
    "+ enlarged 1 px": ["image", "enlarge1"], "+ enlarged 2 px": ["image", "enlarge2"],
    "+ shrunk 1 px (the default)": ["image", "shrink1"], "+ shrunk 2 px": ["image", "shrink2"],
    "+ shrunk 1 and 2 px": ["image", "shrink1", "shrink2"],
    "+ four 1 px shifts": ["image", "right", "left", "down", "up"],
}


def view(images: np.ndarray, kind: str, amount) -> np.ndarray:
    """One view of a batch of 28x28x1 digits on a black (0) background."""
    import tensorflow as tf

    size = images.shape[1:3]
    if kind == "shift":
        return np.roll(np.roll(images, amount[1], axis=1), amount[0], axis=2)
    if kind == "shrink":  # the very layer the saved model uses
        from train.models import ShrunkView
        return np.asarray(ShrunkView(amount)(images))
    inner = images[:, amount:-amount, amount:-amount]
    return tf.image.resize(inner, size).numpy()


def core_of(model):
    """The model inside a model with baked-in views, or the model itself."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="saved digits model.keras files")
    args = parser.parse_args()
    from device.preprocess import to_input
    from tests.conftest import shared_datasets
    from train.data import load_dataset
    from train.models import load_saved_model
    from train.trainer import split_validation

    data_dir = shared_datasets()
    if data_dir is None:
        print("error: set DATA_DIR to the shared datasets", file=sys.stderr)
        return 2
    data = load_dataset("digits", data_dir, 28)
    _, x_val, _, y_val = split_validation(data.x_train, data.y_train, data.groups_train, 0.1, 42)
    spec = {"scale": 1 / 255, "offset": 0.0}
    splits = {"validation": (to_input(x_val, spec), y_val),
              "test": (to_input(data.x_test, spec), data.y_test)}
    rows = {name: {split: [] for split in splits} for name in COMBINATIONS}
    for path in args.models:
        core = core_of(load_saved_model(path))
        for split, (x, y) in splits.items():
            probs = {name: core.predict(view(x, *how), batch_size=512, verbose=0)
                     for name, how in VIEWS.items()}
            for name, members in COMBINATIONS.items():
                mean = sum(probs[m] for m in members)
                rows[name][split].append(100 * float(np.mean(mean.argmax(1) == y)))
    print("| views | validation % (each model) | mean | test % (each model) | mean |")
    print("|---|---|---:|---|---:|")
    for name, by_split in rows.items():
        cells = [f"{' / '.join(f'{a:.2f}' for a in by_split[s])} | {np.mean(by_split[s]):.3f}"
                 for s in splits]
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
