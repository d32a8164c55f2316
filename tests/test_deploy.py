"""`make deploy` against a real OpenSSH server on 127.0.0.1, with keys made for the test.

The server runs on a free unprivileged port with a throw-away host key and user key; the
deploy goes through `make deploy` exactly as a user runs it. Checked: the release exists with
matching checksums, `device check` passed on the target, `current` points at it; the same
release again is a no-op; a broken bundle fails and leaves `current` alone; `make rollback`
switches back.
"""

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from device.bundle import sha256_of
from tests.conftest import broken_int8

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


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
        pytest.fail("rsync is missing: .ci/run installs it")
    return found


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    sshd = sshd_binary()
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)],
                       check=True)
    shutil.copy(home / "user_key.pub", home / "authorized_keys")
    port = free_port()
    (home / "sshd_config").write_text(f"""Port {port}
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
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory
    server = subprocess.Popen([sshd, "-D", "-e", "-f", str(home / "sshd_config")],
                              stderr=open(home / "sshd.log", "w"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"sshd exited: {(home / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.1)
    options = (f"-i {home / 'user_key'} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new "
               f"-o UserKnownHostsFile={home / 'known_hosts'} -o LogLevel=ERROR")
    yield {"host": f"{getpass.getuser()}@127.0.0.1", "port": port, "options": options,
           "home": home}
    server.terminate()
    server.wait(timeout=10)


def make(target: str, ssh: dict, artifacts: Path, base: Path, task: str = "digits"):
    command = ["make", "--no-print-directory", target, f"TASK={task}", f"ARTIFACTS={artifacts}",
               f"PI={ssh['host']}", f"PI_PORT={ssh['port']}", f"PI_DIR={base}",
               f"SSH_OPTS={ssh['options']}", f"PY={Path(os.sys.executable)}", "ARGS=-v"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def current_release(base: Path) -> str:
    return os.readlink(base / "current").split("/")[-1]


def test_deploy_check_switch_noop_broken_and_rollback(ssh_server, quick_artifacts, tmp_path):
    artifacts = quick_artifacts("digits")
    base = tmp_path / "pi" / "edge"

    first = make("deploy", ssh_server, artifacts, base)
    assert first.returncode == 0, first.stdout + first.stderr
    release = current_release(base)
    assert "deployed" in first.stdout and release in first.stdout
    assert "check: ok" in first.stderr  # device check ran on the target and passed
    shipped = base / "releases" / release / "bundle"
    metadata = json.loads((shipped / "metadata.json").read_text())
    for entry in metadata["models"]:
        assert sha256_of(shipped / entry["file"]) == entry["sha256"]
        assert entry["sha256"] == sha256_of(artifacts / "digits" / "bundle" / entry["file"])
    assert (base / "venv" / "bin" / "python").exists()
    assert "systemd" in first.stderr  # installed, or skipped with a clear message

    again = make("deploy", ssh_server, artifacts, base)
    assert again.returncode == 0 and "unchanged" in again.stdout and "nothing to do" in again.stdout
    assert current_release(base) == release

    broken_root = tmp_path / "broken"
    broken_int8(artifacts, "digits", "tflite-int8", tmp_path / "work",
                destination=broken_root / "digits" / "bundle")
    bad = make("deploy", ssh_server, broken_root, base)
    assert bad.returncode != 0 and "failed" in bad.stdout
    assert "FAIL" in bad.stderr  # device check on the target caught it
    assert current_release(base) == release

    newer_root = tmp_path / "newer"
    shutil.copytree(artifacts / "digits" / "bundle", newer_root / "digits" / "bundle")
    meta_path = newer_root / "digits" / "bundle" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["note"] = "a second good release"
    meta_path.write_text(json.dumps(meta))
    time.sleep(1.1)  # release names carry a seconds timestamp
    second = make("deploy", ssh_server, newer_root, base)
    assert second.returncode == 0, second.stdout + second.stderr
    assert current_release(base) != release

    back = make("rollback", ssh_server, artifacts, base)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "rolled back" in back.stdout and current_release(base) == release


def test_deploy_to_an_unreachable_host_fails_clearly(quick_artifacts, tmp_path):
    artifacts = quick_artifacts("digits")
    ssh = {"host": "nobody@127.0.0.1", "port": free_port(), "options": "-o ConnectTimeout=3"}
    result = make("deploy", ssh, artifacts, tmp_path / "edge")
    assert result.returncode != 0
    assert "cannot reach target" in result.stdout and "Traceback" not in result.stderr


def test_deploy_local_and_rollback_local(quick_artifacts, tmp_path):
    artifacts = quick_artifacts("digits")
    target = tmp_path / "local-pi"
    run = subprocess.run(["make", "--no-print-directory", "deploy-local", "TASK=digits",
                          f"ARTIFACTS={artifacts}", f"DIR={target}",
                          f"PY={Path(os.sys.executable)}"],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (target / "current" / "bundle" / "metadata.json").is_file()
