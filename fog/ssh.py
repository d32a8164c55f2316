"""One training host over SSH: run ``fog/remote.sh`` commands, stream output, rsync folders.

Everything goes through the user's own ``ssh`` and ``rsync`` (their config, keys, agent), in
batch mode: no password prompt can hang a run. SSH's own failures (exit 255) are turned into one
line that says what to do; the caller prints it as ``error: ...``.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from device.errors import UserError

REMOTE_SCRIPT = Path(__file__).with_name("remote.sh")
SSH_FAILED = 255

#: SSH's message -> what the user should do about it.
SSH_PROBLEMS = (
    ("Host key verification failed", "unknown host key (Host key verification failed): check "
     "the key and accept it once with `ssh {where}`, or add it to ~/.ssh/known_hosts"),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "its host key changed since it was accepted: "
     "check why, then remove the old key with `ssh-keygen -R {host}`"),
    ("Permission denied", "ssh refused the login (Permission denied): install your key with "
     "`ssh-copy-id {where}` or pass one with --ssh-opts '-i KEY'"),
    ("Could not resolve hostname", "cannot reach {host}: the name does not resolve"),
    ("Connection refused", "cannot reach {host}: {line} (is sshd running there, is the port "
     "right?)"),
    ("timed out", "cannot reach {host}: {line}"),
    ("No route to host", "cannot reach {host}: {line}"),
    ("Network is unreachable", "cannot reach {host}: {line}"),
    ("Connection closed", "the connection to {host} closed unexpectedly"),
)

DISK_FULL = "No space left on device"


@dataclass
class Host:
    target: str                      # user@host, as ssh takes it
    root: str = "~/edgekit-fog"      # the working folder on the host
    port: int | None = None          # None: ssh's own choice (~/.ssh/config, else 22)
    options: list[str] = field(default_factory=list)

    @property
    def hostname(self) -> str:
        return self.target.rsplit("@", 1)[-1]

    def ssh(self) -> list[str]:
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *port, "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
                "-o", "ServerAliveInterval=15", *self.options]

    def command(self, *args: str) -> list[str]:
        """The ssh command line running ``remote.sh ARGS`` fed from the local copy (stdin)."""
        remote = " ".join(shlex.quote(a) for a in ("sh", "-s", "--", args[0], self.root,
                                                    *args[1:]))
        return [*self.ssh(), self.target, remote]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a remote.sh command; raise UserError on SSH's own failures."""
        try:
            done = subprocess.run(self.command(*args), input=REMOTE_SCRIPT.read_text(),
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"{self.target}: no answer within {timeout:.0f} s") from None
        if done.returncode == SSH_FAILED:
            raise UserError(self.explain(done.stderr))
        return done

    def stream(self, *args: str) -> subprocess.Popen:
        """Start a remote.sh command whose stdout the caller reads line by line."""
        process = subprocess.Popen(self.command(*args), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   bufsize=1)
        process.stdin.write(REMOTE_SCRIPT.read_text())
        process.stdin.close()
        return process

    def rsync(self, source: str, destination: str, *options: str,
              timeout: float | None = None) -> subprocess.CompletedProcess:
        shell = " ".join(shlex.quote(a) for a in self.ssh())
        command = ["rsync", "-a", "-e", shell, *options, source, destination]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise UserError("rsync is not installed here: apt-get install rsync (and on the "
                            "host)") from None

    def remote(self, path: str) -> str:
        """``user@host:ROOT/path`` for rsync (the root's ~ expanded by the remote shell)."""
        root = self.root if not self.root.startswith("~/") else self.root[2:]
        return f"{self.target}:{root}/{path}" if root != "~" else f"{self.target}:{path}"

    def explain(self, stderr: str) -> str:
        """SSH's failure as one actionable line."""
        where = f"-p {self.port} {self.target}" if self.port else self.target
        for needle, message in SSH_PROBLEMS:
            if needle in stderr:
                line = next(text.strip() for text in stderr.splitlines() if needle in text)
                return f"{self.target}: " + message.format(where=where, host=self.hostname,
                                                           line=line)
        return f"{self.target}: ssh failed: {last_line(stderr) or 'no message'}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
