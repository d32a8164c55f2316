"""Runs on the training host: start one detached, follow its log, read how it ended.

A run is ``ROOT/runs/<UTC time>-<task>/`` on the host: its log, the job's pid, ``result``
(``PHASE CODE``: ``done 0``, ``setup 1``, ``train 2``, ``export 1``, ``stopped 143``) and
``artifacts/``. The job runs in its own session on the host, so a dropped connection only stops
the log streaming here; ``attach`` picks it up again.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

from device.errors import UserError
from fog.ssh import DISK_FULL, Host, last_line
from fog.sync import sync_dataset, sync_project

BUSY = 75
RESULT_PREFIX = "== fog: result "


@dataclass
class RunInfo:
    id: str
    state: str      # running, done:0, train:2, setup:1, export:1, stopped:143, lost
    task: str
    started: str

    @property
    def running(self) -> bool:
        return self.state == "running"

    def line(self) -> str:
        return f"{self.id}  {self.state:<12} {self.task:<10} started {self.started}"


def busy_error(host: Host, run_id: str) -> UserError:
    return UserError(f"{host.target} is busy: run {run_id} is training there; follow it with "
                     f"`python -m fog attach --host {host.target}` or end it with "
                     f"`python -m fog stop --host {host.target}`")


def start(host: Host, task: str, venv: str | None, train_args: str, export_args: str,
          data_dir: Path | None, say=print) -> str:
    """Sync the project (and dataset), then start the detached job; return the run id."""
    prepared = host.run("prepare")
    if prepared.returncode == BUSY:
        raise busy_error(host, prepared.stdout.split()[-1])
    if prepared.returncode != 0:
        raise UserError(f"{host.target}: cannot prepare {host.root}: "
                        f"{last_line(prepared.stderr + prepared.stdout)}")
    count = sync_project(host)
    say(f"fog: project synced to {host.target}:{host.root}/project ({count} files)")
    if data_dir is not None:
        where = sync_dataset(host, data_dir, task)
        say(f"fog: dataset {data_dir} synced to {host.root}/{where} (cached for later runs)")
    run_id = f"{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{task}"
    started = host.run("start", run_id, task, venv or "", train_args, export_args)
    if started.returncode == BUSY:
        raise busy_error(host, started.stdout.split()[-1])
    if started.returncode != 0:
        raise UserError(f"{host.target}: could not start the run: "
                        f"{last_line(started.stderr + started.stdout)}")
    return run_id


def runs(host: Host) -> list[RunInfo]:
    done = host.run("status")
    if done.returncode != 0:
        raise UserError(f"{host.target}: cannot read the runs: {last_line(done.stderr)}")
    found = []
    for line in done.stdout.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) >= 2:
            found.append(RunInfo(parts[0], parts[1], *(parts[2:] + ["?", "?"])[:2]))
    return sorted(found, key=lambda r: r.id)


def pick(host: Host, run_id: str | None, running_only: bool = False) -> RunInfo:
    """The named run, else the running one, else the newest."""
    known = runs(host)
    if run_id:
        for info in known:
            if info.id == run_id:
                return info
        raise UserError(f"{host.target}: no run {run_id} (`python -m fog status --host "
                        f"{host.target}` lists them)")
    active = [info for info in known if info.running]
    if active:
        return active[-1]
    if running_only or not known:
        raise UserError(f"{host.target}: no run is training" + ("" if known else " and none "
                        "is stored") + ": pass --run ID to name one")
    return known[-1]


def follow(host: Host, run_id: str, out=sys.stdout) -> str:
    """Stream the run's log until the job ends; return its result (``PHASE CODE``)."""
    process = host.stream("follow", run_id)
    result = ""
    try:
        for line in process.stdout:
            if line.startswith(RESULT_PREFIX):
                result = line[len(RESULT_PREFIX):].strip()
            else:
                out.write(line)
                out.flush()
    except KeyboardInterrupt:
        process.kill()
        raise UserError(f"stopped following; run {run_id} goes on on {host.target} "
                        f"(`python -m fog attach --host {host.target}`)") from None
    process.wait()
    stderr = process.stderr.read()
    if not result:
        reason = host.explain(stderr) if process.returncode == 255 else last_line(stderr)
        raise UserError(f"{reason}; run {run_id} goes on there: `python -m fog attach --host "
                        f"{host.target}` follows it again")
    return result


def raise_for_result(host: Host, run_id: str, result: str) -> None:
    """``done 0`` passes; anything else becomes one line with the host log's own reason."""
    phase, _, code = result.partition(" ")
    if phase == "done" and code == "0":
        return
    tail = host.run("tail", run_id, "60").stdout
    if DISK_FULL in tail:
        raise UserError(f"{host.target}: the disk is full ({DISK_FULL}) in run {run_id}: free "
                        f"space under {host.root} (`python -m fog stop --run ID` removes a run)")
    reason = failure_reason(tail)
    if phase == "setup":
        raise UserError(f"remote set-up failed on {host.target} (run {run_id}): {reason}")
    if phase in ("train", "export", "checksums"):
        raise UserError(f"{'training' if phase == 'train' else phase} failed on {host.target} "
                        f"(run {run_id}, exit {code}): {reason}")
    if phase == "stopped":
        raise UserError(f"run {run_id} was stopped on {host.target}")
    raise UserError(f"run {run_id} on {host.target} ended without a result (the host restarted "
                    "or the job was killed); start it again")


def failure_reason(log_tail: str) -> str:
    """The log's own error line: its last ``error:`` line, else the last exception line."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:") or ": error: " in line:  # ours, or argparse's
            return line.split("error:", 1)[1].strip()
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0] or "Exception" in line.split(":", 1)[0]:
            return line
    return lines[-1] if lines else "no output"
