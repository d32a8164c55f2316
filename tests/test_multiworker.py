"""`--strategy multiworker` for real: two worker processes on 127.0.0.1 train one model.

Each process gets TF_CONFIG naming both workers; they train in lock-step (gradients all-reduced
every step), end with identical weights, and only the chief (worker 0) writes artifacts, which
export to a normal bundle that passes `device check`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from device.errors import UserError
from tests.sshd import free_port
from train.distributed import cluster_config, is_chief

REPO = Path(__file__).resolve().parents[1]


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


@pytest.mark.slow
def test_two_workers_train_one_model_and_the_chief_exports_a_bundle(tmp_path):
    ports = [free_port(), free_port()]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": tf_config(ports, index)}
        log = open(tmp_path / f"worker{index}.log", "w")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "train", "digits", "--embedded", "--strategy", "multiworker",
             "--epochs", "3", "--batch-size", "32", "--out", str(tmp_path / f"w{index}")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    codes = [worker.wait(timeout=1200) for worker in workers]
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]

    digests = [re.findall(r"weights digest (\w+)", log) for log in logs]
    assert digests[0] and digests[0] == digests[1]  # the same model on both workers
    assert len(digests[0]) == 2  # one per member
    assert "Epoch 3/3" in logs[0] and "the chief writes the artifacts" in logs[1]
    assert not (tmp_path / "w1" / "digits").exists()  # only the chief writes

    metrics = json.loads((tmp_path / "w0" / "digits" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["global_batch_size"] == 64
    assert metrics["arch"] == "convnet-pair"  # the digits default: each member trained in turn
    assert metrics["peak_learning_rate"] == pytest.approx(2 * 4e-3)  # linear scaling
    assert metrics["test"]["accuracy"] > 0.3, metrics["test"]["accuracy"]  # chance is 0.1

    export = subprocess.run([sys.executable, "-m", "export", "digits", "--artifacts",
                             str(tmp_path / "w0"), "--calibration-count", "100",
                             "--latency-runs", "2"], cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert export.returncode == 0, export.stdout[-2000:] + export.stderr[-2000:]
    check = subprocess.run([sys.executable, "-m", "device", "check", "--bundle",
                            str(tmp_path / "w0" / "digits" / "bundle")], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]


def test_tf_config_is_checked_with_one_line(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs TF_CONFIG"):
        cluster_config()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="not a valid cluster description"):
        cluster_config()
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 2))
    with pytest.raises(UserError, match="outside its worker list"):
        cluster_config()
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 1))
    assert cluster_config()["task"]["index"] == 1 and not is_chief()
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 0))
    assert is_chief()
