"""A release: the device package, its requirements and one bundle, named by time and content.

The content hash covers every file shipped, so deploying the same bundle and runner twice is
recognised (and skipped) whatever the timestamp.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path

from device.atomic import ordinary_mode
from device.bundle import open_bundle

REPO = Path(__file__).resolve().parents[1]
REMOTE_SCRIPT = "remote.sh"


def device_files() -> list[Path]:
    """The runner as the Pi needs it: device/*.py (all subpackages) and the package data that
    pyproject.toml lists for ``device`` (requirements.txt, the live page's files): one list,
    so a release and a pip-installed device package hold the same files."""
    root = REPO / "device"
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    data = device_package_data((REPO / "pyproject.toml").read_text())
    return files + sorted(p for pattern in data for p in root.glob(pattern) if p.is_file())


def device_package_data(pyproject: str) -> list[str]:
    """``[tool.setuptools.package-data] device = [...]`` (tomllib where Python has it, 3.11+)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the one line we need
        match = re.search(r"^device\s*=\s*\[(.*?)\]", pyproject, re.MULTILINE)
        return re.findall(r'"([^"]+)"', match.group(1)) if match else ["requirements.txt"]
    return tomllib.loads(pyproject)["tool"]["setuptools"]["package-data"]["device"]


def stage(bundle_dir: Path, destination: Path) -> str:
    """Copy everything a release holds into ``destination``; return its content hash (12 hex)."""
    bundle = open_bundle(bundle_dir)  # refuse a bundle whose checksums already fail here
    digest = hashlib.sha256()
    for path in device_files():
        relative = path.relative_to(REPO)
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        digest.update(str(relative).encode() + path.read_bytes())
    shutil.copytree(bundle.root, destination / "bundle")
    for path in sorted((destination / "bundle").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(destination)).encode() + path.read_bytes())
    shutil.copy2(Path(__file__).with_name(REMOTE_SCRIPT), destination / REMOTE_SCRIPT)
    for path in [destination, *destination.rglob("*")]:
        # Ordinary modes on the target whatever the source had (a bundle exported before
        # device/atomic.py respected the umask has 0600 files): a service account must read it.
        ordinary_mode(path)
    sha = digest.hexdigest()[:12]
    (destination / "RELEASE.json").write_text(json.dumps({
        "sha": sha, "task": bundle.task, "created": now_stamp(),
        "models": sorted(bundle.models)}, indent=2) + "\n")
    return sha


def now_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def release_name(sha: str) -> str:
    return f"{now_stamp()}-{sha}"
