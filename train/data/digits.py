"""MNIST from its public formats, or scikit-learn's bundled digits as the embedded default.

Accepted layouts in ``<data_dir>/digits`` (or ``<data_dir>``):

* IDX files: ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-*``;
* ``mnist.npz`` as Keras caches it (``x_train``, ``y_train``, ``x_test``, ``y_test``);
* any ``*.npz`` holding ``x_train``/``y_train`` (the shared PNG-derived train set) with the test
  split from IDX files.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np

from device.errors import UserError
from device.preprocess import fit_image
from device.tasks import TASKS
from train.data import Dataset, task_dir

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32,
              0x0E: np.float64}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), validating its header against its length."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read IDX file {path} ({exc}): re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number): re-download it")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_DTYPES[raw[2]]).newbyteorder(">")
    body = raw[4 + 4 * ndim:]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(body) != expected:
        raise UserError(f"{path} is truncated or corrupt ({len(body)} bytes of data, header says "
                        f"{expected}): re-download it")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx(folder: Path, stem: str) -> Path | None:
    """``stem`` as gzip or raw, with the dot-variant some mirrors use (``train-images.idx3-ubyte``)."""
    variants = [stem, stem.replace("-idx", ".idx")]
    for name in variants:
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def read_npz(path: Path, keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Arrays ``keys`` from an npz, with a clear error if the file or a key is wrong."""
    try:
        with np.load(path) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise UserError(f"{path} lacks arrays {missing} (has {archive.files}): "
                                "use an npz with x_train/y_train[/x_test/y_test]")
            return tuple(archive[k] for k in keys)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}): re-download it") from None


def has_mnist_files(folder: Path) -> bool:
    return bool(find_idx(folder, "t10k-images-idx3-ubyte") or list(folder.glob("*.npz")))


def load_train(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    images = find_idx(folder, "train-images-idx3-ubyte")
    labels = find_idx(folder, "train-labels-idx1-ubyte")
    if images and labels:
        return read_idx(images), read_idx(labels)
    for npz in sorted(folder.glob("*.npz")):
        with np.load(npz) as archive:
            if {"x_train", "y_train"} <= set(archive.files):
                return read_npz(npz, ("x_train", "y_train"))
    raise UserError(f"no MNIST training images in {folder}: add train-images-idx3-ubyte.gz + "
                    "train-labels-idx1-ubyte.gz, or mnist.npz")


def load_test(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    images = find_idx(folder, "t10k-images-idx3-ubyte")
    labels = find_idx(folder, "t10k-labels-idx1-ubyte")
    if images and labels:
        return read_idx(images), read_idx(labels)
    for npz in sorted(folder.glob("*.npz")):
        with np.load(npz) as archive:
            if {"x_test", "y_test"} <= set(archive.files):
                return read_npz(npz, ("x_test", "y_test"))
    raise UserError(f"no MNIST test images in {folder}: add t10k-images-idx3-ubyte.gz + "
                    "t10k-labels-idx1-ubyte.gz, or mnist.npz")


def fit_batch(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) gray -> (N, size, size, 1) uint8, resizing only when the size differs."""
    if images.ndim != 3:
        raise UserError(f"MNIST images must be (N, H, W) gray, got shape {images.shape}")
    images = images.astype(np.uint8)
    if images.shape[1:] != (size, size):
        spec = TASKS["digits"].preprocessing(size)
        images = np.stack([fit_image(img, spec)[:, :, 0] for img in images])
    return images[..., None]


def check_pairs(x: np.ndarray, y: np.ndarray, what: str, folder: Path) -> None:
    if len(x) != len(y):
        raise UserError(f"{what} images and labels differ in count ({len(x)} vs {len(y)}) in "
                        f"{folder}: the files do not belong together")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise UserError(f"{what} labels in {folder} fall outside 0-9: these are not MNIST labels")


def download_mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """keras.datasets.mnist (cached in ~/.keras/datasets); a clear error when offline."""
    import keras

    try:
        return keras.datasets.mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - any network failure means the same to the user
        raise UserError("no MNIST files found and the download failed "
                        f"({type(exc).__name__}): put train-images-idx3-ubyte.gz, "
                        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                        "t10k-labels-idx1-ubyte.gz (or mnist.npz) in DATA_DIR/digits, "
                        "or train on the embedded set with --embedded") from None


def load(data_dir: Path | None, size: int, classes: list[str] | None = None) -> Dataset:
    """MNIST from ``data_dir`` if it has it, else download (online), else a clear error."""
    folder = task_dir(data_dir, "digits", has_mnist_files) if data_dir else None
    if folder is not None:
        (x_train, y_train), (x_test, y_test) = load_train(folder), load_test(folder)
        source = str(folder)
    elif data_dir is not None:
        raise UserError(f"no MNIST files in {data_dir} or {data_dir / 'digits'}: add the IDX "
                        "files (train-images-idx3-ubyte.gz, ...) or mnist.npz there")
    else:
        (x_train, y_train), (x_test, y_test) = download_mnist()
        source = "keras.datasets.mnist (download cache)"
    check_pairs(x_train, y_train, "training", folder or Path("download"))
    check_pairs(x_test, y_test, "test", folder or Path("download"))
    return Dataset("digits", list(TASKS["digits"].labels), fit_batch(x_train, size),
                   y_train.astype(np.int64), fit_batch(x_test, size), y_test.astype(np.int64),
                   source)


def mnist_like(image8: np.ndarray) -> np.ndarray:
    """An 8x8 sklearn digit (0-16) -> 28x28 uint8 laid out as MNIST: digit in 20x20, 4 px margin."""
    scaled = np.clip(image8 * (255.0 / 16.0), 0, 255).astype(np.uint8)
    big = cv2.resize(scaled, (20, 20), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=0)


def load_embedded(size: int) -> Dataset:
    """scikit-learn's bundled real digits (1,797 scans): works with no files and no internet."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.stack([mnist_like(img) for img in bunch.images])
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target.astype(np.int64), test_size=0.25, random_state=0,
        stratify=bunch.target)
    return Dataset("digits", list(TASKS["digits"].labels), fit_batch(x_train, size), y_train,
                   fit_batch(x_test, size), y_test, "sklearn.datasets.load_digits (embedded)",
                   notes=["8x8 scans upscaled to 20x20 in a 28x28 frame, like MNIST"])
