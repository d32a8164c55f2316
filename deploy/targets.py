"""Where a release goes: a host over SSH, or a local folder (``make deploy-local``).

Both run ``remote.sh`` commands and copy a folder; SSH uses the user's own ssh config and keys
(plus any ``--ssh-opts``), never a password.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Result:
    code: int
    output: str


@dataclass
class SshTarget:
    host: str
    base: str
    port: int = 22
    options: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.host

    def _ssh(self) -> list[str]:
        return ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", *self.options]

    def run(self, script: str, *args: str, timeout: float = 900) -> Result:
        remote = " ".join(shlex.quote(a) for a in ("sh", script, *args))
        process = subprocess.run([*self._ssh(), self.host, remote], capture_output=True, text=True,
                                 timeout=timeout)
        return Result(process.returncode, (process.stdout + process.stderr).strip())

    def push(self, folder: Path, destination: str) -> Result:
        shell = " ".join(shlex.quote(a) for a in self._ssh())
        process = subprocess.run(["rsync", "-a", "--delete", "--mkpath", "-e", shell, f"{folder}/",
                                  f"{self.host}:{destination}/"], capture_output=True, text=True)
        return Result(process.returncode, (process.stdout + process.stderr).strip())

    def remote_path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])


@dataclass
class LocalTarget:
    """The same steps into a local folder, to try a deploy without a Pi."""

    base: str

    @property
    def name(self) -> str:
        return f"local:{self.base}"

    def run(self, script: str, *args: str, timeout: float = 900) -> Result:
        process = subprocess.run(["sh", script, *args], capture_output=True, text=True,
                                 timeout=timeout)
        return Result(process.returncode, (process.stdout + process.stderr).strip())

    def push(self, folder: Path, destination: str) -> Result:
        target = Path(destination)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
        return Result(0, "")

    def remote_path(self, *parts: str) -> str:
        return str(Path(self.base).expanduser().joinpath(*parts))
