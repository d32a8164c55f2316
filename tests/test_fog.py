"""`python -m fog` end to end: a real OpenSSH server on 127.0.0.1 as the training host, a second
one as the Pi.

The "cloud" host runs a tiny real training (scikit-learn's digits, no dataset files) and export
with the test's own virtualenv (`--venv`, so no second TensorFlow install); the client is killed
mid-training, the run goes on, `attach` follows it to the end, a pull cut off halfway leaves the
local artifacts alone, the next pull verifies checksums, runs `device check` and deploys to the
"Pi". The bad paths each give one `error:` line, a non-zero exit, and the previous local
artifacts untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fog.sync import project_files
from tests.sshd import Sshd, free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the test's own environment, TensorFlow included
# Small but real: 100 images per class, 5 epochs; export without the slow latency runs. (40 and
# 3 epochs left a model so unsettled that its int8 failed the export's thresholds in some runs
# (0.89 pt lost, limit 0.67), and the deploy gate rightly refused it.) The single convnet: the
# fog path is under test here, not the digits default (a pair trains twice). CI stop 34: even
# 100 images and 5 epochs left an int8 at -1.33 pt (limit 0.67) in one run, so the export here
# writes float32 and float16 only: the deploy gate on int8 verdicts has its own tests
# (test_reliability.py), and this one must not hang on a tiny model's quantisation luck.
TRAIN_ARGS = "--embedded --arch convnet --limit-per-class 100 --epochs 5 --batch-size 16"
EXPORT_ARGS = "--formats tflite-fp32,tflite-fp16 --calibration-count 100 --latency-runs 2"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("cloud-sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pi(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("pi-sshd"))
    yield server
    server.stop()


def fog(*args: str, wait: bool = True, timeout: float = 900):
    command = [sys.executable, "-m", "fog", *args]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def host_args(server: Sshd, root: Path, options: str | None = None) -> list[str]:
    return ["--host", server.target, "--port", str(server.port), "--ssh-opts",
            options or server.options, "--root", str(root)]


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def previous_artifacts(artifacts: Path) -> str:
    """A stand-in for the last run's local artifacts/digits; returns its digest."""
    (artifacts / "digits" / "bundle").mkdir(parents=True)
    (artifacts / "digits" / "metrics.json").write_text('{"from": "the previous run"}\n')
    (artifacts / "digits" / "bundle" / "metadata.json").write_text('{"previous": true}\n')
    return tree_digest(artifacts / "digits")


def one_error_line(result) -> str:
    """fog's own verdict (stderr; the remote log streams to stdout as it is)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(lines) == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def job_ends(pid: int, grace: float = 30) -> bool:
    """Whether ``pid`` is gone (or a zombie waiting for init to reap it) within ``grace`` s."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.2)
    return False


def wait_for(condition, process, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def read_until(process, needle: str, timeout: float = 600) -> str:
    """The client's output up to the line containing ``needle``."""
    seen = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        seen.append(line)
        if needle in line:
            return "".join(seen)
        assert time.monotonic() < deadline, "".join(seen)
    raise AssertionError(f"{needle!r} never came: {''.join(seen)}")


def seed_device_venv(base: Path) -> None:
    """The Pi's device-only venv, pre-installed so this test does not pay a second pip install
    (test_deploy covers the install itself): remote.sh sees matching requirements and skips."""
    cache = REPO / ".cache" / "test-artifacts"
    requirements = REPO / "device" / "requirements.txt"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    template = cache / f"device-venv-{wanted[:12]}"
    if not (template / ".requirements.sha256").is_file():
        subprocess.run(["python3", "-m", "venv", str(template)], check=True)
        subprocess.run([str(template / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "-r", str(requirements)], check=True)
        (template / ".requirements.sha256").write_text(wanted + "\n")
    base.mkdir(parents=True, exist_ok=True)
    (base / "venv").symlink_to(template)


def test_run_survives_a_dropped_client_then_attach_pull_check_deploy(cloud, pi, tmp_path):
    root, artifacts, pi_base = tmp_path / "fog", tmp_path / "artifacts", tmp_path / "pi" / "edge"
    before = previous_artifacts(artifacts)
    seed_device_venv(pi_base)
    common = [*host_args(cloud, root), "--artifacts", str(artifacts)]

    client = fog("run", "--task", "digits", *common, "--venv", str(VENV), f"--train-args={TRAIN_ARGS}",
                 f"--export-args={EXPORT_ARGS}", wait=False)
    shown = read_until(client, "Epoch 1/")  # the remote log streams here, live
    assert "project synced" in shown and "detached" in shown
    os.killpg(client.pid, signal.SIGKILL)  # the client and its ssh die: a dropped connection
    client.wait()

    status = fog("status", *host_args(cloud, root))
    assert status.returncode == 0 and " running " in status.stdout, status.stdout + status.stderr
    run_id = status.stdout.split()[0]
    busy = fog("run", "--task", "digits", *common, "--venv", str(VENV))
    assert "is busy: run " + run_id in one_error_line(busy)
    assert tree_digest(artifacts / "digits") == before

    attached = fog("attach", *host_args(cloud, root))
    assert attached.returncode == 0, attached.stdout + attached.stderr
    assert "== fog: export digits" in attached.stdout and "== fog: done" in attached.stdout
    assert tree_digest(artifacts / "digits") == before  # attach only follows

    # A pull whose connection dies halfway: the rsync is killed while files arrive.
    puller = fog("pull", *host_args(cloud, root), "--artifacts", str(artifacts), "--bwlimit",
                 "40", wait=False)
    staging = artifacts / f".fog-pull-{run_id}" / "digits"
    wait_for(lambda: staging.is_dir() and any(p.is_file() for p in staging.rglob("*")), puller)
    for child in children_of(puller.pid):
        os.kill(child, signal.SIGKILL)
    output = puller.communicate(timeout=120)[0]
    assert puller.returncode != 0 and "interrupted" in output and "left as it was" in output, \
        output
    assert tree_digest(artifacts / "digits") == before

    pulled = fog("pull", *host_args(cloud, root), "--artifacts", str(artifacts), "--pi",
                 pi.target, "--pi-port", str(pi.port), "--pi-ssh-opts", pi.options, "--pi-dir",
                 str(pi_base), "--deploy-args=--systemd none")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "checksums verified, device check passed" in pulled.stderr
    bundle = artifacts / "digits" / "bundle"
    remote = root / "runs" / run_id / "artifacts"
    assert tree_digest(artifacts / "digits") == tree_digest(remote / "digits")
    for line in (remote / "digits.sha256").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((artifacts / "digits" / name).read_bytes()).hexdigest() == digest
    metrics = json.loads((artifacts / "digits" / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 5 and (bundle / "metadata.json").is_file()
    assert not list(artifacts.glob(".fog-pull-*")) and not list(artifacts.glob(".digits.*"))
    # Deployed to the "Pi": checked there, current switched to a good release.
    assert "deployed" in pulled.stdout, pulled.stdout + pulled.stderr
    current = pi_base / "current"
    assert (current / ".edgekit-good").is_file()
    assert tree_digest(current / "bundle") == tree_digest(bundle)

    again = fog("status", *host_args(cloud, root))
    assert again.stdout.split()[:3] == [run_id, "done:0", "digits"], again.stdout


def test_stop_ends_a_run_and_cleans_its_files(cloud, tmp_path):
    root = tmp_path / "fog"
    started = fog("run", "--task", "digits", *host_args(cloud, root), "--venv", str(VENV),
                  "--train-args=--embedded --epochs 50", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = next(p.name for p in (root / "runs").iterdir())
    pid = int((root / "runs" / run_id / "pid").read_text())
    stopped = fog("stop", *host_args(cloud, root))
    assert stopped.returncode == 0 and "stopped and removed" in stopped.stdout, \
        stopped.stdout + stopped.stderr
    assert not (root / "runs" / run_id).exists()
    assert job_ends(pid), f"the job {pid} still runs after stop"
    status = fog("status", *host_args(cloud, root))
    assert "no runs" in status.stdout


def test_bad_paths_give_one_line_and_keep_local_artifacts(cloud, tmp_path):
    artifacts = tmp_path / "artifacts"
    before = previous_artifacts(artifacts)
    root = tmp_path / "fog"

    def attempt(*args: str, host=None, venv: str = str(VENV)) -> str:
        result = fog("run", "--task", "digits", *(host or host_args(cloud, root)),
                     "--artifacts", str(artifacts), "--venv", venv, *args)
        line = one_error_line(result)
        assert tree_digest(artifacts / "digits") == before, line
        return line

    nobody = ["--host", "nobody@127.0.0.1", "--port", str(free_port()), "--ssh-opts",
              "-o ConnectTimeout=5"]
    assert "cannot reach 127.0.0.1: ssh: connect to host 127.0.0.1 port" in attempt(host=nobody)

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    strict = host_args(cloud, root, cloud.strict_options(empty))
    assert "unknown host key" in attempt(host=strict)

    bare = tmp_path / "bare-venv"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(bare)], check=True)
    line = attempt("--train-args=--embedded", venv=str(bare))
    assert "remote set-up failed" in line and "no TensorFlow" in line

    line = attempt("--train-args=--embedded --epochs 0")
    assert "training failed" in line and "--epochs" in line

    # A full disk on the host, for real: size-limited tmpfs mounts (root only). One too small
    # for the project itself (fails while sending), one that holds the project but not the
    # trained model (fails while training, in the detached job).
    project_kb = sum((REPO / name).stat().st_size for name in project_files()) // 1024
    for size_kb, phase in ((project_kb // 2, "sending the project"),
                           (project_kb + 1500, "in run")):
        disk = tmp_path / f"disk-{size_kb}k"
        disk.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs",
                                  str(disk)], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a size-limited tmpfs here ({mounted.stderr.strip()}): "
                        "the disk-full paths need root")
        try:
            line = attempt("--train-args=--embedded --limit-per-class 10 --epochs 1",
                           host=host_args(cloud, disk / "fog"))
            assert "disk is full" in line and "No space left on device" in line, line
            assert phase in line, line
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
