"""Any image-folder dataset as a task: ``DIR/<class>/*`` or ``DIR/{train,test}/<class>/*``.

This is what ``python -m train images --data DIR --name NAME`` reads, and what
``python -m device collect`` writes. Everything here runs before TensorFlow is imported, so a
folder with a problem (one class, a class with one image, too few images) fails in a second
with one line per problem instead of after a minute of start-up.

Without a ``test`` folder a test split is made, by *capture session*: frames captured in one
burst are near-identical, so a random split would put a frame's twin in the test set and the
test accuracy would measure memory, not recognition. Sessions come from ``collect`` manifests
(``collect-<session>.json``), else from file names (``<session>_<n>.jpg`` as ``collect``
names them, Roboflow export names, or a name with a trailing frame number such as
``IMG_0412.jpg`` -> ``IMG``). A class captured in one session only is split by time: its last
frames are the test (with a warning, since the frames either side of the cut still look alike).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.errors import UserError
from device.preprocess import fit_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
TRAIN_NAMES = ("train", "training", "Training", "Train")
TEST_NAMES = ("test", "testing", "Test", "Testing")
#: The file names ``device collect`` writes: ``<YYYYmmdd-HHMMSS-xxxx>_<index>.<ext>``.
COLLECT_NAME = re.compile(r"^(?P<session>\d{8}-\d{6}-[0-9a-f]{4})_(?P<index>\d+)$")
#: Roboflow export names: ``<class>.<source>.rf.<hash>...`` (the hand-sign photos).
ROBOFLOW_NAME = re.compile(r"^[^.]+\.(?P<source>.+?)\.rf\.[0-9a-f]+")
#: A trailing frame or photo number: ``IMG_0412``, ``r0_10``, ``clip-7``.
TRAILING_NUMBER = re.compile(r"^(?P<stem>.*?)[-_ .]?(?P<index>\d+)$")
MANIFEST_GLOB = "collect-*.json"

#: Below these a model cannot be trained and tested meaningfully.
MIN_CLASSES = 2
MIN_PER_CLASS = 5
MIN_TOTAL = 20
DEFAULT_TEST_FRACTION = 0.2


@dataclass
class ImageFile:
    path: Path
    label: int
    session: str
    order: tuple  # position within its session (frame number, or name)


@dataclass
class FolderScan:
    """What a dataset folder holds, before any pixel is read."""

    root: Path
    labels: list[str]
    train: list[ImageFile]
    test: list[ImageFile] | None  # None: no test folder, a split is made
    layout: str                   # "classes" or "train/test"
    sessions_from: dict[str, int] = field(default_factory=dict)


def natural_key(text: str) -> tuple:
    """``img2`` before ``img10``: numbers in a name compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def manifest_sessions(class_dir: Path) -> dict[str, tuple[str, int]]:
    """file name -> (session, position) from the class folder's ``collect`` manifests."""
    found: dict[str, tuple[str, int]] = {}
    for manifest in sorted(class_dir.glob(MANIFEST_GLOB)):
        try:
            record = json.loads(manifest.read_text())
            session = str(record["session"])
            files = [entry["file"] if isinstance(entry, dict) else entry
                     for entry in record.get("files", [])]
        except (OSError, ValueError, KeyError, TypeError):
            print(f"warning: {manifest} is not a readable collect manifest; sessions there are "
                  "taken from the file names", file=sys.stderr)
            continue
        for position, name in enumerate(files):
            found[str(name)] = (session, position)
    return found


def session_of(path: Path, manifests: dict[str, tuple[str, int]]) -> tuple[str, tuple, str]:
    """(session, order within it, where the session came from) for one image file."""
    if path.name in manifests:
        session, position = manifests[path.name]
        return session, (position,), "manifest"
    match = COLLECT_NAME.match(path.stem)
    if match:
        return match["session"], (int(match["index"]),), "collect name"
    match = ROBOFLOW_NAME.match(path.name)
    if match:
        source = re.sub(r"_(jpe?g|png)$", "", match["source"])
        return re.sub(r"(?<=mp4|mov|MOV|MP4|avi|-AM|-PM)-\d+$", "", source), \
            natural_key(path.name), "roboflow name"
    match = TRAILING_NUMBER.match(path.stem)
    if match:
        return match["stem"] or "#", (int(match["index"]),), "numbered name"
    return path.stem, natural_key(path.name), "single photo"


def class_folders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def list_class(class_dir: Path, label: int, counts: dict[str, int]) -> list[ImageFile]:
    """The images directly in ``class_dir`` (subfolders such as ``full/`` are not the class)."""
    manifests = manifest_sessions(class_dir)
    files = []
    for path in sorted(class_dir.iterdir(), key=lambda p: natural_key(p.name)):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            session, order, origin = session_of(path, manifests)
            counts[origin] = counts.get(origin, 0) + 1
            files.append(ImageFile(path, label, session, order))
    return files


def find_split(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def scan(folder: Path) -> FolderScan:
    """The classes and image files of ``folder`` (either layout); raises on an unusable one."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"--data {folder}: no such folder; point it at a folder with one "
                        "subfolder of images per class (DIR/<class>/*.jpg)")
    train_dir, test_dir = find_split(folder, TRAIN_NAMES), find_split(folder, TEST_NAMES)
    counts: dict[str, int] = {}
    if train_dir is not None and test_dir is not None:
        labels = [p.name for p in class_folders(train_dir)]
        test_labels = [p.name for p in class_folders(test_dir)]
        if sorted(test_labels) != labels:
            raise UserError(f"{train_dir} and {test_dir} hold different classes ({labels} vs "
                            f"{sorted(test_labels)}): give both the same class folders")
        train = [f for i, name in enumerate(labels) for f in list_class(train_dir / name, i, counts)]
        test = [f for i, name in enumerate(labels)
                for f in list_class(test_dir / name, i, {})]
        return FolderScan(folder, labels, train, test, "train/test", counts)
    root = train_dir or folder  # DIR/train/<class>/ alone: a test split is made from it
    labels = [p.name for p in class_folders(root)]
    files = [f for i, name in enumerate(labels) for f in list_class(root / name, i, counts)]
    return FolderScan(folder, labels, files, None, "classes", counts)


def problems(scan_: FolderScan, usable: list[ImageFile]) -> list[str]:
    """Every reason the folder cannot be trained on, one line each (empty: it can)."""
    lines = []
    where = scan_.root
    if len(scan_.labels) < MIN_CLASSES:
        found = f"only {scan_.labels[0]!r}" if scan_.labels else "none"
        lines.append(f"{where} has {len(scan_.labels)} class folder(s) ({found}): a classifier "
                     f"needs at least {MIN_CLASSES}; add another DIR/<class>/ (a 'none' class "
                     "of empty scenes counts: python -m device collect --label none)")
    per_class = np.bincount([f.label for f in usable], minlength=len(scan_.labels))
    for index, name in enumerate(scan_.labels):
        if per_class[index] == 0:
            lines.append(f"class {name!r} has no readable images in {where}: fill it or remove "
                         "the folder")
        elif per_class[index] == 1:
            lines.append(f"class {name!r} has only 1 image: a class needs at least "
                         f"{MIN_PER_CLASS} (some to learn from, one to test on); capture more "
                         f"with python -m device collect --label {name}")
        elif per_class[index] < MIN_PER_CLASS:
            lines.append(f"class {name!r} has only {per_class[index]} images: a class needs at "
                         f"least {MIN_PER_CLASS}; capture more with python -m device collect "
                         f"--label {name}")
    if len(usable) < MIN_TOTAL and len(scan_.labels) >= MIN_CLASSES:
        lines.append(f"{where} has only {len(usable)} usable images: train on at least "
                     f"{MIN_TOTAL} (a few dozen per class is a good start)")
    return lines


def read_all(files: list[ImageFile], spec: dict) -> tuple[list[ImageFile], np.ndarray, list[Path]]:
    """Decode and fit every file (4 threads); unreadable files are returned apart, not fatal."""
    import cv2

    def fitted(item: ImageFile):
        data = np.fromfile(str(item.path), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        return None if image is None else fit_image(image, spec)

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(fitted, files))
    kept = [(f, image) for f, image in zip(files, images) if image is not None]
    bad = [f.path for f, image in zip(files, images) if image is None]
    x = np.stack([image for _, image in kept]) if kept else \
        np.zeros((0, *spec["size"], spec["channels"]), np.uint8)
    return [f for f, _ in kept], x, bad


def split_by_session(files: list[ImageFile], n_labels: int, fraction: float, seed: int
                     ) -> tuple[np.ndarray, dict]:
    """A boolean test mask over ``files``, and which classes were split how.

    Per class, whole sessions go to the test side (seeded order) until it holds about
    ``fraction`` of the class, never all of them. A class with a single session is split by
    time: its last ``fraction`` of frames (at least one) are the test.
    """
    rng = np.random.default_rng(seed)
    test = np.zeros(len(files), bool)
    by_session, by_time = [], []
    for label in range(n_labels):
        members = [i for i, f in enumerate(files) if f.label == label]
        sessions: dict[str, list[int]] = defaultdict(list)
        for i in members:
            sessions[files[i].session].append(i)
        if len(sessions) >= 2:
            names = sorted(sessions)
            rng.shuffle(names)
            target, taken = fraction * len(members), 0
            for name in names[:-1]:
                if taken >= target:
                    break
                test[sessions[name]] = True
                taken += len(sessions[name])
            by_session.append(label)
        else:
            ordered = sorted(members, key=lambda i: files[i].order)
            count = max(1, int(round(fraction * len(ordered))))
            test[ordered[-count:]] = True
            by_time.append(label)
    return test, {"by_session": by_session, "by_time": by_time}


def session_split(files: list[ImageFile], labels: list[str], fraction: float, seed: int,
                  say) -> tuple[np.ndarray, dict, list[str]]:
    """:func:`split_by_session` with what it did said (and returned) in words."""
    mask, summary = split_by_session(files, len(labels), fraction, seed)
    by_time = [labels[i] for i in summary["by_time"]]
    sessions = len({(f.label, f.session) for f in files})
    notes = []
    if summary["by_session"]:
        note = (f"test split: {fraction:.0%} of each class held out by capture session "
                f"({sessions} sessions in all), so near-identical frames of one burst never "
                "straddle train and test")
        say(note)
        notes.append(note)
    if by_time:
        warning = (f"warning: class(es) {', '.join(by_time)} were captured in one session: "
                   "split by time (the last frames are the test); neighbouring frames look "
                   "alike, so the test accuracy is optimistic. Capture another session "
                   "(another day, place or light) for an honest test")
        say(warning)
        notes.append(warning.removeprefix("warning: "))
    return mask, {"kind": "session", "test_fraction": fraction, "by_time": by_time,
                  "sessions": sessions}, notes


def photo_files(folder: Path, test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 42,
                quiet: bool = False) -> dict:
    """The image files themselves, split as :func:`load` splits them, for the hand-landmark
    route (``train images --arch landmarks``), which finds hands in the full-resolution
    images: the same dict as ``train.data.handsigns.photo_files``. A file that cannot be
    decoded is a photo without a hand there (an error in the test accuracy)."""
    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    found = scan(folder)
    fatal = problems(found, found.train + (found.test or []))
    if fatal:
        raise UserError("\nerror: ".join(fatal))
    train, split = found.train, {"layout": found.layout, "sessions_from": found.sessions_from}
    if found.test is not None:
        test = found.test
        split["kind"] = "given"
    else:
        mask, details, _ = session_split(train, found.labels, test_fraction, seed, say)
        split.update(details)
        test = [f for f, held in zip(train, mask) if held]
        train = [f for f, held in zip(train, mask) if not held]

    def labels_of(files):
        return np.array([f.label for f in files], np.int64)

    def groups_of(files):
        return np.array([f"{f.label}:{f.session}" for f in files])

    return {"labels": list(found.labels), "source": str(found.root),
            "train": [f.path for f in train], "y_train": labels_of(train),
            "groups": groups_of(train), "test": [f.path for f in test],
            "y_test": labels_of(test), "test_groups": groups_of(test), "split": split}


def load(folder: Path, name: str, size: int, colour: str = "rgb",
         test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 42, quiet: bool = False):
    """Scan, check, read and split ``folder`` into a :class:`train.data.Dataset` for ``name``."""
    from device.tasks import custom_task
    from train.data import Dataset

    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    found = scan(folder)
    if not 0.05 <= test_fraction <= 0.5:
        raise UserError(f"--test-split {test_fraction} must be between 0.05 and 0.5")
    spec = custom_task(name, found.labels or ["?"], size, colour).preprocessing(size)
    files, x, bad = read_all(found.train, spec)
    test_files, x_test, bad_test = (read_all(found.test, spec) if found.test is not None
                                    else ([], None, []))
    unreadable = bad + bad_test
    if unreadable:
        say(f"warning: skipped {len(unreadable)} unreadable image file(s) (first: "
            f"{unreadable[0]}): they are empty or corrupt")
    fatal = problems(found, files + test_files)
    if fatal:
        raise UserError("\nerror: ".join(fatal))
    y = np.array([f.label for f in files], np.int64)
    groups = np.array([f"{f.label}:{f.session}" for f in files])
    notes = [f"read {len(files) + len(test_files)} images of {len(found.labels)} classes from "
             f"{found.root} ({found.layout} layout)"]
    split = {"layout": found.layout, "unreadable_skipped": len(unreadable),
             "sessions_from": found.sessions_from}
    if found.test is not None:
        y_test = np.array([f.label for f in test_files], np.int64)
        notes.append("test split: the given test folder")
        split["kind"] = "given"
    else:
        mask, details, split_notes = session_split(files, found.labels, test_fraction, seed, say)
        notes += split_notes
        split.update(details)
        x_test, y_test = x[mask], y[mask]
        x, y, groups = x[~mask], y[~mask], groups[~mask]
    dataset = Dataset(name, list(found.labels), x, y, x_test, y_test, str(found.root), notes,
                      groups_train=groups)
    dataset.split = split
    return dataset
