"""Fruits-360 from its folder layout: ``Training/<Class>/*.jpg`` and ``Test/<Class>/*.jpg``.

The class list is selectable. The default is the classic 16 classes when all of them are present,
otherwise every class found (the shared copy holds 10 other real classes).
"""

from __future__ import annotations

from pathlib import Path

from device.errors import UserError
from device.tasks import CLASSIC_FRUITS, TASKS
from train.data import Dataset, task_dir
from train.data.download import fetch_archive
from train.data.images import find_subdir, list_classes, read_split

TRAIN_NAMES = ("Training", "training", "train")
TEST_NAMES = ("Test", "test", "testing")
ARCHIVE_URL = "https://github.com/Horea94/Fruit-Images-Dataset/archive/refs/heads/master.zip"
WHERE = "put Fruits-360 as DATA_DIR/fruits/Training/<Class>/*.jpg and DATA_DIR/fruits/Test/<Class>/*.jpg"


def has_fruit_folders(folder: Path) -> bool:
    return find_subdir(folder, TRAIN_NAMES) is not None


def choose_classes(found: list[str], requested: list[str] | None, where: Path) -> list[str]:
    """The requested classes (validated), else the classic 16 if all present, else all found."""
    if requested:
        unknown = [name for name in requested if name not in found]
        if unknown:
            raise UserError(f"unknown fruit class(es) {unknown} in {where}: available are "
                            f"{', '.join(found)}")
        return list(requested)
    if set(CLASSIC_FRUITS) <= set(found):
        return list(CLASSIC_FRUITS)
    if not found:
        raise UserError(f"no class folders in {where}: {WHERE}")
    return found


def locate(data_dir: Path | None) -> Path:
    if data_dir is not None:
        folder = task_dir(data_dir, "fruits", has_fruit_folders)
        if folder is None:
            raise UserError(f"no Fruits-360 Training/ folder in {data_dir} or "
                            f"{data_dir / 'fruits'}: {WHERE}")
        return folder
    root = fetch_archive(ARCHIVE_URL, "fruits-360", WHERE)
    matches = [p.parent for p in root.rglob("Training") if p.is_dir()]
    if not matches:
        raise UserError(f"the downloaded archive at {root} has no Training/ folder: {WHERE}")
    return matches[0]


def load(data_dir: Path | None, size: int, classes: list[str] | None = None) -> Dataset:
    folder = locate(data_dir)
    train_dir = find_subdir(folder, TRAIN_NAMES)
    test_dir = find_subdir(folder, TEST_NAMES)
    if test_dir is None:
        raise UserError(f"no Test/ folder next to {train_dir}: {WHERE}")
    chosen = choose_classes(list_classes(train_dir), classes, train_dir)
    spec = TASKS["fruits"].preprocessing(size)
    x_train, y_train = read_split(train_dir, chosen, chosen, spec, "fruits train")
    x_test, y_test = read_split(test_dir, chosen, chosen, spec, "fruits test")
    return Dataset("fruits", chosen, x_train, y_train, x_test, y_test, str(folder))
