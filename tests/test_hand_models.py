"""hand_models: the pinned MediaPipe files are verified, a tampered one is refused, and a fetch
that cannot reach the registry fails with one clear line (``--optional``: a warning, exit 0)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hand_models
from device.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def run_module(*args: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "hand_models", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def unreachable_registry(folder: Path) -> dict:
    """pip pointed at a closed port, with no cache, no local wheel folders and no config."""
    return {"EDGEKIT_HAND_MODELS": str(folder), "PIP_INDEX_URL": "http://127.0.0.1:9/",
            "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1",
            "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0"}


@pytest.fixture(scope="module")
def models() -> Path:
    try:
        return hand_models.model_dir()
    except UserError as exc:
        pytest.skip(f"hand models not fetched ({exc})")


def test_fetch_fails_with_one_error_line_when_the_registry_is_unreachable(tmp_path):
    result = run_module("fetch", env_extra=unreachable_registry(tmp_path / "models"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: could not download mediapipe==0.10.14")
    assert "python -m hand_models fetch" in lines[0]
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_optional_fetch_warns_and_goes_on(tmp_path):
    result = run_module("fetch", "--optional", env_extra=unreachable_registry(tmp_path / "m"))
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: hand models not fetched"), lines


def test_path_without_models_says_how_to_fetch(tmp_path):
    result = run_module("path", env_extra={"EDGEKIT_HAND_MODELS": str(tmp_path)})
    assert result.returncode == 2
    assert "python -m hand_models fetch" in result.stderr


def test_fetch_is_a_quick_no_op_with_a_good_copy(models):
    result = run_module("fetch", env_extra={"EDGEKIT_HAND_MODELS": str(models)})
    assert result.returncode == 0, result.stderr
    assert "SHA-256 verified" in result.stdout
    path = run_module("path", env_extra={"EDGEKIT_HAND_MODELS": str(models)})
    assert path.stdout.strip() == str(models)


def test_a_tampered_model_is_refused(models, tmp_path, monkeypatch):
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    target = copy / "hand_landmark_full.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setenv("EDGEKIT_HAND_MODELS", str(copy))
    with pytest.raises(UserError, match="hand_landmark_full.tflite does not match"):
        hand_models.model_path("landmark")
    result = run_module("path", env_extra={"EDGEKIT_HAND_MODELS": str(copy)})
    assert result.returncode == 2 and "pinned SHA-256" in result.stderr


def test_a_wheel_with_a_changed_member_is_refused_before_writing(models, tmp_path):
    import zipfile

    wheel = tmp_path / "mediapipe-0.10.14-fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, (member, _) in hand_models.FILES.items():
            data = (models / name).read_bytes()
            archive.writestr(member, data + b"x" if name == "handedness.txt" else data)
    with pytest.raises(UserError, match="handedness.txt in .* does not match"):
        hand_models.extract(wheel, tmp_path / "out")
    assert not (tmp_path / "out").exists()
