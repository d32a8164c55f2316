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


class Lock:
    """A running ``remote.sh lock``: the target's deploy lock, held while this process lives.

    The lock holder reads its stdin until EOF; closing the pipe (``release``, or this process
    dying in any way) lets it go. ``held`` is False when the target refused (another deploy
    holds it past the wait), with the reason in ``output``.
    """

    def __init__(self, command: list[str]):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        first = self.process.stdout.readline()
        self.held = first.strip() == "locked"
        self.output = first
        if not self.held:
            self.output += self.process.stdout.read()
            self.process.wait()

    def release(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def remote_quote(word: str) -> str:
    """shlex.quote, but a leading ``~/`` stays outside the quotes so the target's shell expands
    it: the default ``--dir ~/edge`` names the script as ``~/edge/.tools/remote.sh``."""
    if word.startswith("~/"):
        return "~/" + shlex.quote(word[2:])
    return shlex.quote(word)


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
        remote = " ".join(remote_quote(a) for a in ("sh", script, *args))
        process = subprocess.run([*self._ssh(), self.host, remote], capture_output=True, text=True,
                                 timeout=timeout)
        return Result(process.returncode, (process.stdout + process.stderr).strip())

    def hold_lock(self, script: str, wait_s: float) -> Lock:
        remote = " ".join(remote_quote(a) for a in ("sh", script, "lock", self.base, str(wait_s)))
        return Lock([*self._ssh(), self.host, remote])

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

    def hold_lock(self, script: str, wait_s: float) -> Lock:
        return Lock(["sh", script, "lock", self.base, str(wait_s)])

    def push(self, folder: Path, destination: str) -> Result:
        """Mirror ``folder`` into ``destination`` like ``rsync -a --delete``: each file copied
        under a temp name and renamed over the old one, so a script another deploy is running
        from is never missing for a moment."""
        target = Path(destination)
        try:
            mirror(Path(folder), target)
        except OSError as exc:
            return Result(1, f"error: cannot write {target}: {exc.strerror or exc}")
        return Result(0, "")

    def remote_path(self, *parts: str) -> str:
        return str(Path(self.base).expanduser().joinpath(*parts))


def mirror(source: Path, target: Path) -> None:
    """Make ``target`` a copy of ``source``: files replaced atomically, extra entries removed."""
    import os

    target.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        wanted.add(relative)
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
        shutil.copy2(path, temporary)
        os.replace(temporary, destination)
    for path in sorted(target.rglob("*"), reverse=True):
        if path.relative_to(target) not in wanted:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
