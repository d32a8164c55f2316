"""The Ansible fleet playbook against two real OpenSSH servers on 127.0.0.1.

deploy/ansible/deploy.yml runs deploy/remote.sh's steps (the script `make deploy` runs) on every
host of an inventory: the shipped files match the bundle's checksums, `device check` passed on
each target, `current` switched; the same bundle again is a no-op; a broken bundle is refused on
the targets while the good release stays current; rollback.yml switches back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device.bundle import sha256_of
from tests.sshd import Sshd
from tests.test_fog import seed_device_venv

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "deploy" / "ansible"


def ansible_playbook() -> str:
    found = Path(sys.executable).parent / "ansible-playbook"
    if not found.exists():
        if os.environ.get("CI"):
            pytest.fail("ansible-core is missing: pip install -e '.[fleet]'")
        pytest.skip("ansible-core not installed (pip install -e '.[fleet]')")
    return str(found)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    servers = [Sshd(tmp_path_factory.mktemp(f"edge{i}-sshd")) for i in (1, 2)]
    yield servers
    for server in servers:
        server.stop()


def inventory(servers: list[Sshd], bases: list[Path], path: Path) -> Path:
    lines = ["[edge]"]
    for index, (server, base) in enumerate(zip(servers, bases), 1):
        lines.append(f"pi{index} ansible_host=127.0.0.1 ansible_port={server.port} "
                     f"ansible_user={server.user} "
                     f"ansible_ssh_private_key_file={server.home / 'user_key'} "
                     f"edgekit_dir={base} edgekit_systemd=none")
    lines += ["", "[edge:vars]", "ansible_python_interpreter=/usr/bin/python3",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={path.parent / 'known_hosts'} "
              "-o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes'"]
    path.write_text("\n".join(lines) + "\n")
    return path


def play(playbook: str, hosts: Path, tmp_path: Path, *extra: str):
    env = {**os.environ, "LC_ALL": "C.UTF-8", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
           "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
           "ANSIBLE_PIPELINING": "1"}  # one ssh round trip per task instead of three
    return subprocess.run([ansible_playbook(), "-i", str(hosts), str(PLAYBOOKS / playbook),
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=env)


def variant(bundle: Path, destination: Path, note: str, labels: int | None = None) -> Path:
    """A copy of ``bundle`` differing by a metadata note (a new release); ``labels`` cuts the
    label list (the model's outputs then disagree: `device check` fails on the target)."""
    shutil.copytree(bundle, destination)
    meta_path = destination / "metadata.json"
    meta_path.chmod(0o644)
    meta = json.loads(meta_path.read_text())
    meta["note"] = note
    if labels:
        meta["labels"] = meta["labels"][:labels]
    meta_path.write_text(json.dumps(meta))
    return destination


def current(base: Path) -> str:
    return os.readlink(base / "current").split("/")[-1]


def test_playbook_deploys_refuses_a_broken_bundle_and_rolls_back(fleet, quick_artifacts,
                                                                  tmp_path):
    bundle = quick_artifacts("digits") / "digits" / "bundle"
    bases = [tmp_path / f"pi{i}" / "edge" for i in (1, 2)]
    for base in bases:
        seed_device_venv(base)
    hosts = inventory(fleet, bases, tmp_path / "hosts.ini")

    first = play("deploy.yml", hosts, tmp_path, "-e", f"bundle={variant(bundle, tmp_path / 'a', 'a')}")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("deployed ") >= 2 and "failed=0" in first.stdout
    releases = [current(base) for base in bases]
    assert releases[0] == releases[1]
    metadata = json.loads((bundle / "metadata.json").read_text())
    for base in bases:
        shipped = base / "current" / "bundle"
        assert (base / "current" / ".edgekit-good").is_file()  # checked on the target
        for entry in metadata["models"]:
            assert sha256_of(shipped / entry["file"]) == entry["sha256"]

    again = play("deploy.yml", hosts, tmp_path, "-e", f"bundle={tmp_path / 'a'}")
    assert again.returncode == 0 and again.stdout.count("unchanged ") >= 2, again.stdout
    assert [current(base) for base in bases] == releases

    time.sleep(1.1)  # release names carry a seconds timestamp
    second = play("deploy.yml", hosts, tmp_path, "-e",
                  f"bundle={variant(bundle, tmp_path / 'b', 'b')}")
    assert second.returncode == 0, second.stdout + second.stderr
    newer = [current(base) for base in bases]
    assert newer[0] != releases[0]

    time.sleep(1.1)
    broken = variant(bundle, tmp_path / "broken", "broken", labels=9)
    refused = play("deploy.yml", hosts, tmp_path, "-e", f"bundle={broken}")
    assert refused.returncode != 0
    assert refused.stdout.count("check failed on the target") >= 2, refused.stdout
    assert "model has 10 outputs but the bundle lists 9 labels" in refused.stdout
    assert [current(base) for base in bases] == newer  # the good release stays
    for base in bases:
        assert list((base / "releases").glob("*.failed"))
        assert not list((base / "releases").glob("*.partial"))
        assert not list((base / ".tools").glob("ansible-lock-*"))  # the lock was released

    back = play("rollback.yml", hosts, tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert back.stdout.count("rolled back ") >= 2
    assert [current(base) for base in bases] == releases
