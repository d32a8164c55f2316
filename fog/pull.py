"""Bringing a finished run's ``artifacts/TASK`` home without ever leaving it half-replaced.

The files land in a staging folder beside the local artifacts (kept between attempts, so a pull
cut off halfway resumes where it stopped). Only when every file matches the checksums the host
wrote after export, and the bundle passes ``python -m device check`` here, does the staging
folder take the task's name: the previous ``artifacts/TASK`` is renamed aside first and removed
last, so at every instant one complete copy exists under a known name.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from device.errors import UserError
from fog.ssh import DISK_FULL, Host, last_line


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """``sha256sum`` output -> {relative path: hash}."""
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.lstrip("*")] = digest
    return entries


def verify(folder: Path, manifest: dict[str, str]) -> None:
    """Exactly the manifest's files, each with its hash; else one line naming the first odd one."""
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    missing = sorted(set(manifest) - present)
    extra = sorted(present - set(manifest))
    if missing or extra:
        raise UserError(f"the pulled files do not match the host's list ("
                        f"{'missing ' + missing[0] if missing else 'unexpected ' + extra[0]}): "
                        "run `python -m fog pull` again")
    for name, digest in sorted(manifest.items()):
        if sha256_file(folder / name) != digest:
            raise UserError(f"checksum mismatch for {name} after the pull: run `python -m fog "
                            "pull` again (it re-fetches what differs)")


def device_check(bundle: Path) -> None:
    """The bundle must pass the device's own self-test here before it replaces anything."""
    done = subprocess.run([sys.executable, "-m", "device", "check", "--bundle", str(bundle)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        output = (done.stdout + "\n" + done.stderr).splitlines()
        reason = next((line.strip() for line in reversed(output)
                       if line.strip().startswith("error:") or "FAIL" in line), None)
        raise UserError(f"the pulled bundle fails `device check` here "
                        f"({reason or last_line(done.stdout + done.stderr)})")


def recover(artifacts: Path, task: str) -> None:
    """Undo a swap cut off between its two renames: put the set-aside copy back."""
    final = artifacts / task
    aside = sorted(artifacts.glob(f".{task}.replaced-*"))
    if not final.exists() and aside:
        aside[-1].rename(final)
    for old in artifacts.glob(f".{task}.replaced-*"):
        shutil.rmtree(old, ignore_errors=True)


def swap(staged: Path, final: Path, run_id: str) -> None:
    aside = final.with_name(f".{final.name}.replaced-{run_id}")
    if final.exists():
        shutil.rmtree(aside, ignore_errors=True)
        final.rename(aside)
    staged.rename(final)
    shutil.rmtree(aside, ignore_errors=True)


def pull(host: Host, run_id: str, task: str, artifacts: Path, bwlimit: int | None = None) -> Path:
    """Fetch, verify, check, then swap in ``artifacts/TASK``; return it."""
    artifacts.mkdir(parents=True, exist_ok=True)
    recover(artifacts, task)
    staging = artifacts / f".fog-pull-{run_id}"
    staging.mkdir(exist_ok=True)
    remote = f"runs/{run_id}/artifacts/{task}"
    limit = [f"--bwlimit={bwlimit}"] if bwlimit else []
    kept = f"artifacts/{task} was left as it was"
    try:
        for source, destination, options in (
                (f"{remote}.sha256", staging / f"{task}.sha256", []),
                (f"{remote}/", staging / task, ["--delete", *limit])):
            done = host.rsync(host.remote(source), f"{destination}{'/' if options else ''}",
                              *options)
            if done.returncode != 0:
                output = done.stderr + done.stdout
                if DISK_FULL in output:
                    raise UserError(f"the local disk is full ({DISK_FULL}) while pulling; {kept}")
                if done.returncode == 255 and "rsync" not in output:
                    raise UserError(host.explain(output) + f"; {kept}")
                raise UserError(f"pull from {host.target} interrupted (rsync exit "
                                f"{done.returncode}: {last_line(output) or 'killed'}); {kept}; "
                                "`python -m fog pull` again resumes")
    except KeyboardInterrupt:
        raise UserError(f"pull interrupted; {kept}; `python -m fog pull` again resumes") from None
    verify(staging / task, read_manifest(staging / f"{task}.sha256"))
    device_check(staging / task / "bundle")
    final = artifacts / task
    swap(staging / task, final, run_id)
    shutil.rmtree(staging, ignore_errors=True)
    return final
