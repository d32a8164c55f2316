"""What goes to the training host: the project as it is in the working tree, and the dataset.

The project list is git's (tracked files plus untracked ones that are not ignored, as they are on
disk, uncommitted edits included), so build outputs, ``.venv`` and ``artifacts/`` never travel.
The remote ``project/`` becomes an exact mirror of that list (files removed here are removed
there). The dataset is copied incrementally into a cache beside it that later runs reuse.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from device.errors import UserError
from fog.ssh import DISK_FULL, Host, last_line

REPO = Path(__file__).resolve().parents[1]


def project_files(repo: Path = REPO) -> list[str]:
    """``git ls-files -co --exclude-standard``, minus tracked files deleted from the tree."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=repo,
                                capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UserError(f"{repo} is not a git checkout (or git is missing): fog sends the "
                        "files git tracks, so run it from a clone of the project") from None
    names = sorted({name for name in listed.decode().split("\0") if name})
    return [name for name in names if (repo / name).is_file()]


def filter_rules(files: list[str]) -> str:
    """rsync filter rules admitting exactly ``files`` (and their folders), anchored at the root;
    everything else is excluded, and with ``--delete-excluded`` removed on the host."""
    folders = {str(parent) for name in files for parent in Path(name).parents
               if str(parent) != "."}

    def escaped(name: str) -> str:  # rsync treats *?[ as wildcards in filter rules
        return "".join(f"\\{c}" if c in "*?[" else c for c in name)

    rules = [f"+ /{escaped(folder)}/" for folder in sorted(folders)]
    rules += [f"+ /{escaped(name)}" for name in files]
    rules.append("- *")
    return "\n".join(rules) + "\n"


def sync_project(host: Host, repo: Path = REPO) -> int:
    """Mirror the project's files into ``ROOT/project/``; return how many files it holds."""
    files = project_files(repo)
    with tempfile.NamedTemporaryFile("w", prefix="fog-filter-", suffix=".txt",
                                     delete=False) as handle:
        handle.write(filter_rules(files))
    try:
        done = host.rsync(f"{repo}/", host.remote("project/"), "--delete", "--delete-excluded",
                          "--prune-empty-dirs", f"--filter=merge {handle.name}")
    finally:
        os.unlink(handle.name)
    check_transfer(host, done, "sending the project")
    return len(files)


def dataset_source(data_dir: Path, task: str) -> tuple[Path, str]:
    """What to send and where it lands: the task's own folder when the data dir has one."""
    if (data_dir / task).is_dir():
        return data_dir / task, f"data/{task}/"
    return data_dir, "data/"


def sync_dataset(host: Host, data_dir: Path, task: str) -> str:
    """Copy the dataset into the host's cache (only what changed); return where it went."""
    if not data_dir.is_dir():
        raise UserError(f"--data {data_dir}: no such folder (the dataset folder holding "
                        f"{task}/, or pass --train-args '--embedded' for digits)")
    source, destination = dataset_source(data_dir, task)
    done = host.rsync(f"{source}/", host.remote(destination), "--delete", "--mkpath")
    check_transfer(host, done, "sending the dataset")
    return destination


#: Below this much free space a failed transfer is taken for a full disk (rsync's own message
#: can be lost when the far end dies of ENOSPC and the connection closes first).
LOW_SPACE_KB = 1024


def free_kb(host: Host) -> int | None:
    try:
        answer = host.run("space", timeout=30)
        return int(answer.stdout.split()[-1])
    except (UserError, ValueError, IndexError):
        return None


def check_transfer(host: Host, done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode == 0:
        return
    output = done.stderr + done.stdout
    if done.returncode == 255 and "rsync" not in output:
        raise UserError(host.explain(output))
    free = None if DISK_FULL in output else free_kb(host)
    if DISK_FULL in output or (free is not None and free < LOW_SPACE_KB):
        where = f"{free} kB free under" if free is not None else "on"
        raise UserError(f"{host.target}: the disk is full ({DISK_FULL}: {where} {host.root}) "
                        f"while {what}: free space there (`python -m fog stop --run ID` removes "
                        "a run)")
    if done.returncode == 255 or "connection unexpectedly closed" in output:
        raise UserError(host.explain(output))
    raise UserError(f"{host.target}: rsync failed while {what}: {last_line(output)}")
