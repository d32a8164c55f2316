"""Rock / paper / scissors: photo folders or Sign Language MNIST CSV.

Folders: ``training|Training|train/<class>/`` and ``testing|Test|test/<class>/`` with class folders
``rock``, ``paper``, ``scissors`` (any case, any image size). CSV: ``sign_mnist_train.csv`` and
``sign_mnist_test.csv`` (``label,pixel1..pixel784``), keeping letters A, B, V (labels 0, 1, 21) as
rock, paper, scissors.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from device.errors import UserError
from device.preprocess import fit_image
from device.tasks import HANDSIGNS, TASKS
from train.data import Dataset, task_dir
from train.data.download import fetch_archive
from train.data.images import find_subdir, list_classes, read_split

TRAIN_NAMES = ("training", "Training", "train", "rps")
TEST_NAMES = ("testing", "Test", "test", "rps-test-set")
SIGN_MNIST_LABELS = {0: 0, 1: 1, 21: 2}  # A -> rock, B -> paper, V -> scissors
CSV_FILES = ("sign_mnist_train.csv", "sign_mnist_test.csv")
RPS_URLS = ("https://storage.googleapis.com/download.tensorflow.org/data/rps.zip",
            "https://storage.googleapis.com/download.tensorflow.org/data/rps-test-set.zip")
WHERE = ("put photos as DATA_DIR/handsigns/training/{rock,paper,scissors}/ and "
         "DATA_DIR/handsigns/testing/{rock,paper,scissors}/, or sign_mnist_train.csv and "
         "sign_mnist_test.csv in DATA_DIR/handsigns")


def find_csv(folder: Path, name: str) -> Path | None:
    """The CSV directly in ``folder`` or in a same-named subfolder (as Kaggle's archive has it)."""
    for candidate in (folder / name, folder / Path(name).stem / name):
        if candidate.is_file():
            return candidate
    return None


def has_handsigns(folder: Path) -> bool:
    return find_subdir(folder, TRAIN_NAMES) is not None or find_csv(folder, CSV_FILES[0]) is not None


def class_folders(split_dir: Path) -> list[str]:
    """Folder names for rock, paper, scissors in that order, matched case-insensitively."""
    by_lower = {name.lower(): name for name in list_classes(split_dir)}
    missing = [label for label in HANDSIGNS if label not in by_lower]
    if missing:
        raise UserError(f"{split_dir} lacks class folder(s) {missing} (has "
                        f"{sorted(by_lower.values())}): {WHERE}")
    return [by_lower[label] for label in HANDSIGNS]


def read_sign_mnist(path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of letters A, B, V from a Sign Language MNIST CSV, as fitted RGB images."""
    spec = TASKS["handsigns"].preprocessing(size)
    images, labels = [], []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or header[0] != "label" or len(header) != 785:
            raise UserError(f"{path} does not have Sign Language MNIST columns "
                            "(label, pixel1..pixel784): use the Kaggle sign_mnist CSV")
        for line_number, row in enumerate(reader, start=2):
            if len(row) != 785:
                raise UserError(f"{path} line {line_number} has {len(row)} columns, expected 785")
            letter = int(row[0])
            if letter in SIGN_MNIST_LABELS:
                pixels = np.array(row[1:], dtype=np.float32).clip(0, 255).astype(np.uint8)
                images.append(fit_image(pixels.reshape(28, 28), spec))
                labels.append(SIGN_MNIST_LABELS[letter])
    if not images:
        raise UserError(f"{path} has no rows for letters A, B or V (labels 0, 1, 21)")
    return np.stack(images), np.array(labels, dtype=np.int64)


def load_folders(folder: Path, size: int) -> Dataset:
    train_dir = find_subdir(folder, TRAIN_NAMES)
    test_dir = find_subdir(folder, TEST_NAMES)
    if test_dir is None:
        raise UserError(f"no testing/ folder next to {train_dir}: {WHERE}")
    spec = TASKS["handsigns"].preprocessing(size)
    groups: list[str] = []
    x_train, y_train = read_split(train_dir, list(HANDSIGNS), class_folders(train_dir), spec,
                                  "handsigns train", groups)
    x_test, y_test = read_split(test_dir, list(HANDSIGNS), class_folders(test_dir), spec,
                                "handsigns test")
    return Dataset("handsigns", list(HANDSIGNS), x_train, y_train, x_test, y_test, str(folder),
                   groups_train=np.array(groups))


def load_csv(folder: Path, size: int) -> Dataset:
    train_csv, test_csv = (find_csv(folder, name) for name in CSV_FILES)
    if test_csv is None:
        raise UserError(f"found {train_csv} but no sign_mnist_test.csv next to it: {WHERE}")
    x_train, y_train = read_sign_mnist(train_csv, size)
    x_test, y_test = read_sign_mnist(test_csv, size)
    return Dataset("handsigns", list(HANDSIGNS), x_train, y_train, x_test, y_test, str(folder),
                   notes=["Sign Language MNIST letters A/B/V as rock/paper/scissors"])


def load(data_dir: Path | None, size: int, classes: list[str] | None = None) -> Dataset:
    if classes:
        raise UserError("--classes is for fruits; handsigns is always rock, paper, scissors")
    if data_dir is None:
        train_root = fetch_archive(RPS_URLS[0], "rps", WHERE)
        test_root = fetch_archive(RPS_URLS[1], "rps-test-set", WHERE)
        return load_folders(_merge_download(train_root, test_root), size)
    folder = task_dir(data_dir, "handsigns", has_handsigns)
    if folder is None:
        raise UserError(f"no hand-sign data in {data_dir} or {data_dir / 'handsigns'}: {WHERE}")
    if find_subdir(folder, TRAIN_NAMES) is not None:
        return load_folders(folder, size)
    return load_csv(folder, size)


def _merge_download(train_root: Path, test_root: Path) -> Path:
    """Keras extracts the two TensorFlow archives side by side; their common parent holds both."""
    parent = train_root.parent
    if find_subdir(parent, TRAIN_NAMES) is None or find_subdir(parent, TEST_NAMES) is None:
        raise UserError(f"the downloaded archives in {parent} lack rps/ and rps-test-set/: {WHERE}")
    return parent


def photo_files(data_dir: Path | None) -> dict:
    """The photo files themselves (not decoded): for the landmark route, which finds hands in
    the full-resolution photos. Returns train/test paths and labels, and each training
    photo's clip (for the clip-grouped validation split)."""
    from train.data.images import list_images, source_group

    if data_dir is None:
        raise UserError(f"--arch landmarks reads hand-sign photo folders: pass --data-dir ({WHERE})")
    folder = task_dir(data_dir, "handsigns", has_handsigns)
    train_dir = find_subdir(folder, TRAIN_NAMES) if folder else None
    test_dir = find_subdir(folder, TEST_NAMES) if folder else None
    if train_dir is None or test_dir is None:
        raise UserError(f"no training/ and testing/ photo folders in {data_dir} or "
                        f"{data_dir / 'handsigns'}: --arch landmarks needs photos; {WHERE}")

    def split(split_dir: Path) -> tuple[list[Path], np.ndarray]:
        paths, labels = [], []
        for index, name in enumerate(class_folders(split_dir)):
            files = list_images(split_dir / name)
            paths += files
            labels += [index] * len(files)
        return paths, np.array(labels, dtype=np.int64)

    train_paths, y_train = split(train_dir)
    test_paths, y_test = split(test_dir)
    return {"labels": list(HANDSIGNS), "source": str(folder), "train": train_paths,
            "y_train": y_train, "groups": np.array([source_group(p) for p in train_paths]),
            "test": test_paths, "y_test": y_test,
            "test_groups": np.array([source_group(p) for p in test_paths])}
