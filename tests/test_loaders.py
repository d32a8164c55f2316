"""Each loader on the real shared datasets, and on deliberately broken files in a temp dir."""

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.errors import UserError
from train.data import digits as digits_loader
from train.data import handsigns as handsigns_loader
from train.data import load_dataset, resolve_data_dir

REPO = Path(__file__).resolve().parents[1]


# --- real files -------------------------------------------------------------------------------

def test_digits_from_shared_idx_and_npz(data_dir):
    data = load_dataset("digits", data_dir, 28)
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (9000, 28, 28, 1)
    assert data.counts()["train"]["1"] == 6742 and data.counts()["test"]["0"] == 876
    assert data.x_test.max() == 255 and data.x_test[:, 0, 0].max() == 0  # ink on black, MNIST-like


def test_fruits_takes_every_class_when_classic_16_absent(data_dir):
    data = load_dataset("fruits", data_dir, 32)
    assert len(data.labels) == 10 and data.labels == sorted(data.labels)
    assert data.counts()["train_total"] == 4367 and data.counts()["test_total"] == 1957
    assert data.x_train.shape[1:] == (32, 32, 3)


def test_fruits_class_list_is_selectable(data_dir):
    data = load_dataset("fruits", data_dir, 32, classes=["Plum 5", "Cherry 3"])
    assert data.labels == ["Plum 5", "Cherry 3"]
    assert data.counts()["train"] == {"Plum 5": 453, "Cherry 3": 465}


def test_handsigns_photo_folders(data_dir):
    data = load_dataset("handsigns", data_dir, 64)
    assert data.labels == ["rock", "paper", "scissors"]
    assert data.counts()["train"] == {"rock": 740, "paper": 553, "scissors": 584}
    assert data.counts()["test_total"] == 270 and data.x_test.shape[1:] == (64, 64, 3)
    # Crops carry the clip they came from: 513 sources, the largest 7 are 60-frame videos.
    assert len(data.groups_train) == 1877 and len(set(data.groups_train)) == 513


def test_source_group_joins_frames_of_one_clip_and_roboflow_copies():
    from train.data.images import source_group

    def group(name):
        return source_group(Path(name))

    assert group("rock.IMG_5567_mp4-14_jpg.rf.5e00_01894.jpg") == "IMG_5567_mp4"
    assert group("rock.IMG_5567_mp4-57_jpg.rf.aa11_00001.jpg") == "IMG_5567_mp4"
    assert group("paper.Photo-on-2-16-22-at-10-20-AM-4_jpg.rf.bc_00002.jpg") == \
        "Photo-on-2-16-22-at-10-20-AM"
    # Roboflow's augmented copies of one frame (different hashes) stay together.
    assert group("rock.0001_png.rf.5e009a_01894.jpg") == group("rock.0001_png.rf.b7e30e_00123.jpg")
    assert group("scissors.egohands-public-1624546383552_png_jpg.rf.0f_00010.jpg") == \
        "egohands-public-1624546383552_png"
    assert group("r_123_100.jpg") == "r_123_100"  # other names: each image on its own


def test_grouped_validation_split_keeps_clips_apart(data_dir):
    from train.trainer import split_validation, validation_kind

    data = load_dataset("handsigns", data_dir, 32)
    x = np.arange(len(data.y_train))
    x_train, x_val, y_train, y_val = split_validation(x, data.y_train, data.groups_train, 0.1, 42)
    assert not set(data.groups_train[x_train]) & set(data.groups_train[x_val])
    assert 0.07 < len(x_val) / len(x) < 0.15 and set(y_val) == {0, 1, 2}
    # Without groups it is the usual stratified split.
    _, x_val, _, _ = split_validation(x, data.y_train, None, 0.1, 42)
    assert len(x_val) == round(0.1 * len(x))
    # --val-split 0: the final run trains on every training image and says so.
    x_train, x_val, _, _ = split_validation(x, data.y_train, data.groups_train, 0.0, 42)
    assert len(x_train) == len(x) and len(x_val) == 0
    assert [validation_kind(data.groups_train, f) for f in (0.1, 0.0)] == ["clip-grouped", "none"]
    assert validation_kind(None, 0.1) == "stratified"


def test_embedded_digits_need_no_files():
    data = load_dataset("digits", None, 28, embedded=True)
    assert len(data.x_train) + len(data.x_test) == 1797
    assert data.x_train.shape[1:] == (28, 28, 1)
    # Laid out like MNIST: a 4-pixel empty margin around a 20x20 digit.
    assert data.x_train[:, :4].max() == 0 and data.x_train[:, 4:24, 4:24].max() > 200


# --- broken files -----------------------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_round_trip_and_truncation(tmp_path):
    array = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(digits_loader.read_idx(tmp_path / "a.gz"), array)
    raw = gzip.open(tmp_path / "a.gz").read()
    with gzip.open(tmp_path / "b.gz", "wb") as handle:
        handle.write(raw[:-100])
    with pytest.raises(UserError, match=r"b\.gz is truncated or corrupt"):
        digits_loader.read_idx(tmp_path / "b.gz")


def test_idx_bad_magic_and_not_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match=r"cannot read IDX file .*x\.gz"):
        digits_loader.read_idx(tmp_path / "x.gz")
    (tmp_path / "y").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(UserError, match="bad magic number"):
        digits_loader.read_idx(tmp_path / "y")


def test_mnist_count_mismatch_is_reported(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(4))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(2))
    with pytest.raises(UserError, match="differ in count"):
        load_dataset("digits", tmp_path, 28)


def test_missing_data_dir_names_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    with pytest.raises(UserError, match=str(tmp_path / "nope")):
        resolve_data_dir(str(tmp_path / "nope"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(UserError, match="from DATA_DIR"):
        resolve_data_dir(None)


def copy_fruits(data_dir: Path, tmp_path: Path, classes=("Plum 5", "Cherry 3"), per_class=5):
    for split in ("Training", "Test"):
        for name in classes:
            target = tmp_path / "fruits" / split / name
            target.mkdir(parents=True)
            for src in sorted((data_dir / "fruits" / split / name).glob("*.jpg"))[:per_class]:
                shutil.copy(src, target)
    return tmp_path


def test_corrupt_image_names_the_file(data_dir, tmp_path):
    root = copy_fruits(data_dir, tmp_path)
    broken = root / "fruits" / "Training" / "Plum 5" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    with pytest.raises(UserError, match=r"cannot decode image .*broken\.jpg"):
        load_dataset("fruits", root, 32)


def test_empty_class_folder_is_reported(data_dir, tmp_path):
    root = copy_fruits(data_dir, tmp_path)
    (root / "fruits" / "Training" / "Empty").mkdir()
    (root / "fruits" / "Test" / "Empty").mkdir()
    with pytest.raises(UserError, match=r"Empty has no images"):
        load_dataset("fruits", root, 32)


def test_unknown_fruit_class_lists_the_available_ones(data_dir, tmp_path):
    root = copy_fruits(data_dir, tmp_path)
    with pytest.raises(UserError, match=r"unknown fruit class\(es\) \['Kiwi'\].*Cherry 3"):
        load_dataset("fruits", root, 32, classes=["Kiwi"])


def test_handsigns_missing_class_folder(data_dir, tmp_path):
    for split in ("training", "testing"):
        for label in ("rock", "paper"):
            target = tmp_path / "handsigns" / split / label
            target.mkdir(parents=True)
            src = sorted((data_dir / "handsigns" / split / label).glob("*.jpg"))[0]
            shutil.copy(src, target)
    with pytest.raises(UserError, match=r"lacks class folder\(s\) \['scissors'\]"):
        load_dataset("handsigns", tmp_path, 48)


def sign_mnist_csv(path: Path, data_dir: Path, letters, columns=785):
    """A Sign Language MNIST-format CSV whose pixel rows are real hand-sign photos (gray 28x28)."""
    photos = sorted((data_dir / "handsigns" / "testing" / "rock").glob("*.jpg"))
    header = ["label"] + [f"pixel{i}" for i in range(1, columns)]
    lines = [",".join(header)]
    for letter, photo in zip(letters, photos):
        gray = cv2.resize(cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE), (28, 28))
        lines.append(",".join([str(letter)] + [str(v) for v in gray.ravel()[:columns - 1]]))
    path.write_text("\n".join(lines) + "\n")


def test_sign_mnist_csv_keeps_a_b_v_as_rock_paper_scissors(data_dir, tmp_path):
    folder = tmp_path / "handsigns"
    folder.mkdir()
    sign_mnist_csv(folder / "sign_mnist_train.csv", data_dir, [0, 1, 21, 5, 0])
    sign_mnist_csv(folder / "sign_mnist_test.csv", data_dir, [21, 3])
    data = load_dataset("handsigns", tmp_path, 48)
    assert data.y_train.tolist() == [0, 1, 2, 0]  # letter F (5) dropped
    assert data.y_test.tolist() == [2]
    assert data.x_train.shape == (4, 48, 48, 3)


def test_sign_mnist_csv_with_wrong_columns(data_dir, tmp_path):
    folder = tmp_path / "handsigns"
    folder.mkdir()
    sign_mnist_csv(folder / "sign_mnist_train.csv", data_dir, [0], columns=100)
    sign_mnist_csv(folder / "sign_mnist_test.csv", data_dir, [0])
    with pytest.raises(UserError, match="does not have Sign Language MNIST columns"):
        handsigns_loader.load(tmp_path, 48)


# --- the CLI: one line, non-zero exit, nothing written ----------------------------------------

def run_train(*args, cwd: Path):
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3",
                                          "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("args, message", [
    (["fruits", "--data-dir", "/nonexistent/data"], "/nonexistent/data"),
    (["handsigns", "--data-dir", "{tmp}"], "photo folders in"),
    (["fruits", "--data-dir", "{data}", "--classes", "Kiwi"], "unknown fruit class"),
])
def test_cli_user_errors_are_one_line(args, message, tmp_path, data_dir):
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(tmp_path)).replace("{data}", str(data_dir)) for a in args]
    result = run_train(*args, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_cli_unknown_task_is_rejected_by_argparse(tmp_path):
    result = run_train("cats", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice: 'cats'" in result.stderr
