"""Real OpenSSH servers on 127.0.0.1 for end-to-end tests (the fog "cloud" host, "Pis").

Each server gets a free unprivileged port, a throw-away host key and a user key made for the
test, and runs as the current user. ``options`` is what a client passes to reach it without
touching the user's own ~/.ssh.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sshd_binary() -> str:
    found = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(found).exists():
        if os.environ.get("CI"):
            pytest.fail("openssh-server is missing: .ci/run installs it")
        pytest.skip("openssh-server not installed (apt-get install openssh-server rsync)")
    if not shutil.which("rsync"):
        pytest.fail("rsync is missing: apt-get install rsync")
    return found


class Sshd:
    """One running sshd; ``stop()`` ends it (the fixtures do)."""

    def __init__(self, home: Path):
        sshd = sshd_binary()
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        for name in ("host_key", "user_key"):
            if not (home / name).exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                                str(home / name)], check=True)
        shutil.copy(home / "user_key.pub", home / "authorized_keys")
        self.port = free_port()
        (home / "sshd_config").write_text(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {home / 'host_key'}
PidFile {home / 'sshd.pid'}
AuthorizedKeysFile {home / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
""")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation
        self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(home / "sshd_config")],
                                        stderr=open(home / "sshd.log", "w"))
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sshd did not start: {(home / 'sshd.log').read_text()[-500:]}")
                time.sleep(0.1)
        self.user = getpass.getuser()
        self.target = f"{self.user}@127.0.0.1"
        self.known_hosts = home / "known_hosts"
        self.options = (f"-i {home / 'user_key'} -o IdentitiesOnly=yes "
                        f"-o StrictHostKeyChecking=accept-new "
                        f"-o UserKnownHostsFile={self.known_hosts} -o LogLevel=ERROR")

    def strict_options(self, known_hosts: Path) -> str:
        """Client options that refuse a host key not already in ``known_hosts``."""
        return (f"-i {self.home / 'user_key'} -o IdentitiesOnly=yes "
                f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts} "
                "-o LogLevel=ERROR")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
