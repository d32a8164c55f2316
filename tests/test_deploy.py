"""`make deploy` against a real OpenSSH server on 127.0.0.1, with keys made for the test.

The server runs on a free unprivileged port with a throw-away host key and user key; the
deploy goes through `make deploy` exactly as a user runs it. Checked: the release exists with
matching checksums, `device check` passed on the target, `current` points at it; the same
release again is a no-op; a broken bundle fails and leaves `current` alone; `make rollback`
switches back.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from device.bundle import sha256_of
from tests.conftest import broken_int8
from tests.sshd import Sshd, free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    """A real sshd on 127.0.0.1 (tests/sshd.py) standing in for the Pi."""
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield {"host": server.target, "port": server.port, "options": server.options,
           "home": server.home}
    server.stop()


def make_env() -> dict:
    """This environment without the outer make's flags: under `make test ARGS=...` pytest's
    ARGS reach the inner make through MAKEFLAGS (and the environment: each call sets ARGS)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def make(target: str, ssh: dict, artifacts: Path, base: Path, task: str = "digits"):
    command = ["make", "--no-print-directory", target, f"TASK={task}", f"ARTIFACTS={artifacts}",
               f"PI={ssh['host']}", f"PI_PORT={ssh['port']}", f"PI_DIR={base}",
               f"SSH_OPTS={ssh['options']}", f"PY={Path(os.sys.executable)}", "ARGS=-v"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=make_env())


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
    assert "error: check failed: tflite-int8" in bad.stdout  # the check's own reason line
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
                          f"PY={Path(os.sys.executable)}", "ARGS="],
                         cwd=REPO, capture_output=True, text=True, timeout=900, env=make_env())
    assert run.returncode == 0, run.stdout + run.stderr
    assert (target / "current" / "bundle" / "metadata.json").is_file()


# --- issue 14: crash-safe releases -----------------------------------------------------------

def variant(artifacts: Path, root: Path, note: str) -> Path:
    """An artifacts root whose digits bundle differs from ``artifacts``' only by a metadata note
    (a new content hash, so a new release), checksums intact."""
    bundle = root / "digits" / "bundle"
    shutil.copytree(artifacts / "digits" / "bundle", bundle)
    meta_path = bundle / "metadata.json"
    meta_path.chmod(0o644)
    meta = json.loads(meta_path.read_text())
    meta["note"] = note
    meta_path.write_text(json.dumps(meta))
    return root


def deploy_local(artifacts: Path, base: Path, *extra: str, wait: bool = True):
    command = [os.sys.executable, "-m", "deploy", "local", "--task", "digits", "--artifacts",
               str(artifacts), "--dir", str(base), "--systemd", "none", *extra]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def good_marked(base: Path) -> dict[str, bool]:
    """Final-named releases and whether each carries the good mark."""
    return {p.name: (p / ".edgekit-good").is_file() for p in (base / "releases").iterdir()
            if not p.name.endswith((".partial", ".failed"))}


def check_process_running(base: Path) -> bool:
    """A `device check` running inside one of ``base``'s releases (read from /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if b"check" in cmdline and b"device" in cmdline and cwd.startswith(str(base)):
            return True
    return False


def wait_for(condition, process, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def staging_of(pid: int) -> list[Path]:
    import tempfile
    return list(Path(tempfile.gettempdir()).glob(f"edgekit-release-{pid}-*"))


def test_kill_9_during_deploys_then_rollback_lands_on_a_good_release(quick_artifacts, tmp_path):
    """Before: a deploy killed during its check left an unchecked release under its final name;
    rollback activated it, pruning counted it, and each kill leaked /tmp/edgekit-release-*."""
    artifacts = quick_artifacts("digits")
    base = tmp_path / "pi"
    first = deploy_local(variant(artifacts, tmp_path / "a", "a"), base)
    assert first.returncode == 0, first.stdout + first.stderr
    release_a = current_release(base)
    time.sleep(1.1)
    second = deploy_local(variant(artifacts, tmp_path / "b", "b"), base)
    assert second.returncode == 0, second.stdout + second.stderr
    release_b = current_release(base)

    killed = []
    points = {"staging": lambda p: bool(staging_of(p.pid)),
              "upload": lambda p: bool(list((base / "releases").glob("*.partial"))),
              "check": lambda p: check_process_running(base)}
    for index, (point, reached) in enumerate(points.items()):
        time.sleep(1.1)
        process = deploy_local(variant(artifacts, tmp_path / f"c{index}", point), base,
                               wait=False)
        wait_for(lambda p=process, r=reached: r(p), process)
        process.kill()
        process.communicate()
        killed.append(process.pid)
        assert current_release(base) == release_b, point
        assert all(good_marked(base).values()), (point, good_marked(base))
    while check_process_running(base):  # the orphaned check of the last kill ends on its own
        time.sleep(0.2)

    back = subprocess.run([os.sys.executable, "-m", "deploy", "rollback", "--local", str(base)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert back.returncode == 0, back.stdout + back.stderr
    assert current_release(base) == release_a and good_marked(base)[release_a]
    check = subprocess.run([str(base / "venv" / "bin" / "python"), "-m", "device", "check",
                            "--bundle", "bundle"], cwd=base / "current", capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr

    time.sleep(1.1)
    again = deploy_local(variant(artifacts, tmp_path / "d", "d"), base, "--keep", "1")
    assert again.returncode == 0, again.stdout + again.stderr  # the lock died with the kills
    assert not list((base / "releases").glob("*.partial"))  # swept under the lock
    assert not any(staging_of(pid) for pid in killed)  # swept: their processes are gone
    assert list(good_marked(base)) == [current_release(base)]  # --keep 1: the newest good one


def test_two_deploys_to_one_target_never_interleave(quick_artifacts, tmp_path):
    artifacts = quick_artifacts("digits")
    base = tmp_path / "pi"
    one = deploy_local(variant(artifacts, tmp_path / "one", "one"), base, wait=False)
    two = deploy_local(variant(artifacts, tmp_path / "two", "two"), base, wait=False)
    outputs = [process.communicate(timeout=900) for process in (one, two)]
    # Each either deployed (the second after waiting for the lock) or refused with the lock's
    # line (the first took longer than the wait, e.g. installing the venv); never both failed,
    # never a half-made release.
    deployed = [out for out, _ in outputs if "deployed" in out]
    refused = [out for out, _ in outputs if "another deploy to this target is in progress" in out]
    assert deployed and len(deployed) + len(refused) == 2, outputs
    assert sorted(p.returncode for p in (one, two)) == ([0, 0] if len(deployed) == 2 else [0, 1])
    marked = good_marked(base)
    assert len(marked) == len(deployed) and all(marked.values())
    assert current_release(base) in marked
    assert not list((base / "releases").glob("*.partial"))


def test_a_failed_deploy_shows_the_checks_own_error_line(quick_artifacts, tmp_path):
    """Before: the reason was the check's last output line, often an XNNPACK INFO line."""
    artifacts = quick_artifacts("digits")
    root = variant(artifacts, tmp_path / "short", "short")
    meta_path = root / "digits" / "bundle" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["labels"] = meta["labels"][:9]
    meta_path.write_text(json.dumps(meta))
    base = tmp_path / "pi"
    result = deploy_local(root, base)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "failed" in line)
    assert "error: check failed: tflite-int8: model has 10 outputs but the bundle lists 9 " \
           "labels" in line, line
    assert "INFO" not in line and not (base / "current").exists()
    assert good_marked(base) == {}


def test_kill_9_over_ssh_then_rollback_and_redeploy(ssh_server, quick_artifacts, tmp_path):
    """The deploy lock over SSH dies with a killed deployer (its ssh's stdin closes)."""
    artifacts = quick_artifacts("digits")
    base = tmp_path / "pi" / "edge"
    first = make("deploy", ssh_server, variant(artifacts, tmp_path / "a", "a"), base)
    assert first.returncode == 0, first.stdout + first.stderr
    release_a = current_release(base)
    time.sleep(1.1)
    second = make("deploy", ssh_server, variant(artifacts, tmp_path / "b", "b"), base)
    assert second.returncode == 0, second.stdout + second.stderr
    time.sleep(1.1)
    root = variant(artifacts, tmp_path / "c", "c")
    process = subprocess.Popen(
        [os.sys.executable, "-m", "deploy", "push", "--task", "digits", "--artifacts", str(root),
         "--hosts", ssh_server["host"], "--port", str(ssh_server["port"]), "--dir", str(base),
         "--ssh-opts", ssh_server["options"], "--systemd", "none"], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: check_process_running(base), process)
    process.kill()
    process.communicate()
    assert all(good_marked(base).values())
    back = make("rollback", ssh_server, artifacts, base)
    assert back.returncode == 0, back.stdout + back.stderr
    assert current_release(base) == release_a
    time.sleep(1.1)
    again = make("deploy", ssh_server, root, base)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not list((base / "releases").glob("*.partial"))


# --- issue 17: the deployed service as the live page ------------------------------------------

FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl --user for the test: a user instance that answers, records what it is told, and
# reports the unit active once it has been restarted.
echo "$*" >> "$EDGEKIT_SYSTEMCTL_LOG"
case "$*" in
  *show-environment*) exit 0 ;;
  *is-active*) [ -f "$EDGEKIT_SYSTEMCTL_LOG.active" ] && exit 0 || exit 3 ;;
  *restart*) touch "$EDGEKIT_SYSTEMCTL_LOG.active" ;;
esac
exit 0
"""


def unit_exec(home: Path) -> tuple[str, Path]:
    """The written unit's ExecStart command and WorkingDirectory."""
    unit = (home / ".config" / "systemd" / "user" / "edgekit.service").read_text()
    fields = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
    return fields["ExecStart"], Path(fields["WorkingDirectory"])


def test_deploy_serve_installs_the_live_page_as_the_service(quick_artifacts, tmp_path):
    """`make deploy-local SERVE=PORT` writes a unit whose command serves the page, and that
    command, run from the release, answers /api/result; deploying the same bundle without SERVE
    turns the service back into the plain runner (and restarts it), with nothing else redone."""
    import shlex
    import urllib.request

    from tests.sshd import free_port

    artifacts = quick_artifacts("digits")
    home, bin_dir, base = tmp_path / "home", tmp_path / "bin", tmp_path / "pi"
    home.mkdir()
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    log = tmp_path / "systemctl.log"
    env = {**make_env(), "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "EDGEKIT_SYSTEMCTL_LOG": str(log)}
    video = tmp_path / "clip.avi"
    subprocess.run([os.sys.executable, "-m", "device", "footage", "--bundle",
                    str(artifacts / "digits" / "bundle"), "--out", str(video), "--frames", "600"],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    port = free_port()

    def deploy(*serve: str):
        return subprocess.run(["make", "--no-print-directory", "deploy-local", "TASK=digits",
                               f"ARTIFACTS={artifacts}", f"DIR={base}", f"SOURCE={video}",
                               f"PY={Path(os.sys.executable)}", *serve,
                               f"ARGS=--source {video}"],
                              cwd=REPO, capture_output=True, text=True, timeout=900, env=env)

    served = deploy(f"SERVE={port}")
    assert served.returncode == 0, served.stdout + served.stderr
    assert f"ssh -L {port}:127.0.0.1:{port}" in served.stdout, served.stdout
    command, workdir = unit_exec(home)
    assert " -m device serve " in command and f"--port {port}" in command, command
    assert "--host 127.0.0.1" in command and workdir == base / "current"
    assert "--user restart edgekit.service" in log.read_text()

    server = subprocess.Popen(shlex.split(command), cwd=workdir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline, result = time.monotonic() + 120, None
        while result is None or result.get("label") is None:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "the deployed serve never answered"
            time.sleep(0.3)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/result",
                                            timeout=5) as response:
                    result = json.loads(response.read())
            except OSError:
                continue
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert b"<html" in response.read().lower()
        assert result["label"] in json.loads(
            (base / "current" / "bundle" / "metadata.json").read_text())["labels"] + ["nothing",
                                                                                     "unsure"]
    finally:
        server.terminate()
        server.communicate(timeout=30)

    restarts = log.read_text().count("--user restart")
    plain = deploy()
    assert plain.returncode == 0 and "unchanged" in plain.stdout, plain.stdout + plain.stderr
    command, _ = unit_exec(home)
    assert " -m device run " in command and "--headless" in command, command
    assert log.read_text().count("--user restart") == restarts + 1
    again = deploy()  # the same unit, running: nothing restarts
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert log.read_text().count("--user restart") == restarts + 1
