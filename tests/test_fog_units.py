"""fog's local pieces without a network: what gets sent, how a pull is verified and swapped,
which log line becomes the error, and the remote quoting of a ``~/`` path."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from deploy.targets import remote_quote
from device.errors import UserError
from fog.pull import read_manifest, recover, swap, verify
from fog.runs import failure_reason
from fog.sync import filter_rules, project_files

REPO = Path(__file__).resolve().parents[1]


def test_the_project_list_is_gits_and_rsync_sends_exactly_it(tmp_path):
    files = project_files(REPO)
    assert "fog/remote.sh" in files and "pyproject.toml" in files
    assert not any(name.startswith((".venv/", "artifacts/", ".cache/")) for name in files)

    source = tmp_path / "src"
    for name in ("a.py", "pkg/b.py", "pkg/deep/c[1].txt", "ignored/d.py", "top.bin"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    rules = tmp_path / "rules"
    rules.write_text(filter_rules(["a.py", "pkg/b.py", "pkg/deep/c[1].txt"]))
    mirror = tmp_path / "mirror"
    (mirror / "stale").mkdir(parents=True)
    (mirror / "stale" / "old.py").write_text("deleted here, removed there")
    subprocess.run(["rsync", "-a", "--delete", "--delete-excluded", "--prune-empty-dirs",
                    f"--filter=merge {rules}", f"{source}/", f"{mirror}/"], check=True)
    sent = sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*") if p.is_file())
    assert sent == ["a.py", "pkg/b.py", "pkg/deep/c[1].txt"]


def test_verify_refuses_missing_extra_and_changed_files(tmp_path):
    folder = tmp_path / "digits"
    (folder / "bundle").mkdir(parents=True)
    (folder / "bundle" / "model.tflite").write_bytes(b"model")
    (folder / "metrics.json").write_text("{}")
    manifest = tmp_path / "digits.sha256"
    manifest.write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  "
                                f"{p.relative_to(folder)}\n"
                                for p in sorted(folder.rglob("*")) if p.is_file()))
    verify(folder, read_manifest(manifest))
    (folder / "bundle" / "model.tflite").write_bytes(b"modem")
    with pytest.raises(UserError, match="checksum mismatch for bundle/model.tflite"):
        verify(folder, read_manifest(manifest))
    (folder / "bundle" / "model.tflite").write_bytes(b"model")
    (folder / "extra.txt").write_text("?")
    with pytest.raises(UserError, match="unexpected extra.txt"):
        verify(folder, read_manifest(manifest))
    (folder / "extra.txt").unlink()
    (folder / "metrics.json").unlink()
    with pytest.raises(UserError, match="missing metrics.json"):
        verify(folder, read_manifest(manifest))


def test_swap_keeps_one_complete_copy_and_recovers_a_cut_swap(tmp_path):
    artifacts = tmp_path / "artifacts"
    (artifacts / "digits").mkdir(parents=True)
    (artifacts / "digits" / "old").write_text("old")
    staged = artifacts / ".fog-pull-1" / "digits"
    staged.mkdir(parents=True)
    (staged / "new").write_text("new")
    swap(staged, artifacts / "digits", "1")
    assert [p.name for p in (artifacts / "digits").iterdir()] == ["new"]
    assert not list(artifacts.glob(".digits.replaced-*"))

    # Cut between the two renames: only the set-aside copy exists; the next pull restores it.
    (artifacts / "digits").rename(artifacts / ".digits.replaced-2")
    recover(artifacts, "digits")
    assert (artifacts / "digits" / "new").is_file()


def test_the_error_line_is_the_logs_own():
    log = "Epoch 1/3\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n" \
          "error: --epochs 0 must be positive\nsomething after\n"
    assert failure_reason(log) == "--epochs 0 must be positive"
    argparse = "usage: python -m train digits ...\n" \
               "python -m train digits: error: argument --epochs: 0 must be >= 1\n"
    assert failure_reason(argparse) == "argument --epochs: 0 must be >= 1"
    traceback = "Traceback (most recent call last):\n  File x\nOSError: [Errno 28] No space\n"
    assert failure_reason(traceback) == "OSError: [Errno 28] No space"


def test_a_home_relative_remote_path_is_left_for_the_remote_shell():
    assert remote_quote("~/edge/.tools/remote.sh") == "~/edge/.tools/remote.sh"
    assert remote_quote("~/my edge/x") == "~/'my edge/x'"
    assert remote_quote("/abs/path with space") == "'/abs/path with space'"
    assert remote_quote("~user") == "'~user'"


def test_embedded_training_sends_no_dataset_even_with_data_dir_set(monkeypatch, tmp_path):
    """CI exports DATA_DIR: an --embedded run must not send (and fill the host with) MNIST."""
    from fog.cli import build_parser, dataset_to_send

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    base = ["run", "--task", "digits", "--host", "me@box"]
    embedded = build_parser().parse_args([*base, "--train-args=--embedded --epochs 1"])
    assert dataset_to_send(embedded) is None
    explicit = build_parser().parse_args([*base, "--data", str(tmp_path),
                                          "--train-args=--embedded"])
    assert dataset_to_send(explicit) is None
    real = build_parser().parse_args([*base, "--train-args=--epochs 1"])
    assert dataset_to_send(real) == tmp_path
