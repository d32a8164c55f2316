"""Deploying a release to one target, and rolling one back.

Crash-safe by construction, whatever point a deploy is killed at (``kill -9`` included):

* The whole deploy holds the target's deploy lock (``remote.sh lock``): a second deploy to the
  same target waits, then refuses; it never interleaves. The lock dies with the deploying
  process, so a killed deploy never leaves it held.
* A new release is uploaded as ``releases/NAME.partial``, its requirements installed and
  ``device check`` run there. Only after the check passed is it marked good and renamed to
  ``NAME``, and only then does ``current`` switch (atomically) and the service restart.
* ``rollback`` and pruning only ever consider releases marked good; pruning never removes the
  newest good one or the current one. Leftovers of a killed deploy (``*.partial``, a half-made
  ``current`` link) are swept by the next deploy, under the lock.
* A failure's reason is the check's own ``error:`` line, not whatever it printed last.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from deploy.release import REMOTE_SCRIPT

#: How long a second deploy to the same target waits for the first before refusing.
LOCK_WAIT_S = 60


@dataclass
class Outcome:
    host: str
    status: str   # "deployed", "unchanged", "failed", "rolled back"
    release: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def line(self) -> str:
        return f"{self.host}: {self.status} {self.release} {self.detail}".rstrip()


class Cancelled(Exception):
    """The user interrupted the deploy: no further step starts."""


def parse_state(output: str) -> tuple[str, list[str]]:
    current, releases = "", []
    for line in output.splitlines():
        if line.startswith("current="):
            current = line.split("=", 1)[1]
        elif line.startswith("release="):
            releases.append(line.split("=", 1)[1])
    return current, releases


def tools_script(target) -> str:
    """Where the target keeps the newest remote.sh (pushed before anything else)."""
    return target.remote_path(".tools", REMOTE_SCRIPT)


def deploy_to(target, staged: Path, tools: Path, sha: str, name: str, keep: int,
              service: tuple[str, ...], log, cancel: threading.Event | None = None) -> Outcome:
    """Deploy the staged release to ``target`` under its deploy lock; never raises for remote
    failures. ``service``: remote.sh's service arguments (MODE SOURCE [PORT HOST])."""
    pushed = target.push(tools, target.remote_path(".tools"))
    if pushed.code != 0:
        return Outcome(target.name, "failed", name, f"cannot reach target: {pushed.output}")
    lock = target.hold_lock(tools_script(target), LOCK_WAIT_S)
    if not lock.held:
        return Outcome(target.name, "failed", name, f"({reason_line(lock.output)})")
    try:
        return locked_deploy(target, staged, sha, name, keep, service, log,
                             cancel or threading.Event())
    except Cancelled:
        return Outcome(target.name, "failed", name, "(interrupted; the running release was "
                       "left as it was)")
    finally:
        lock.release()


def locked_deploy(target, staged: Path, sha: str, name: str, keep: int,
                  service: tuple[str, ...], log, cancel: threading.Event) -> Outcome:
    base, script = target.base, tools_script(target)

    def step(command: str, *args: str):
        if cancel.is_set():
            raise Cancelled
        result = target.run(script, command, base, *args)
        log(f"{target.name}: {command}\n{result.output}")
        return result

    state = step("state")
    if state.code != 0:
        return Outcome(target.name, "failed", name, f"cannot read state: {state.output}")
    current, releases = parse_state(state.output)
    if current.endswith(f"-{sha}") and current in releases:
        # The release is there; the service may still be asked to change (run -> serve).
        ensured = step("ensure-service", *service)
        if ensured.code != 0:
            return Outcome(target.name, "failed", current,
                           f"(service failed): {reason_line(ensured.output)}")
        said = service_line(ensured.output)
        return Outcome(target.name, "unchanged", current,
                       "(already current: same bundle and runner, nothing to do)"
                       + (f"\n  {said}" if said else ""))
    existing = [r for r in releases if r.endswith(f"-{sha}")]
    if existing:
        name, folder = existing[-1], existing[-1]
        log(f"{target.name}: release {name} is already there, re-checking it")
    else:
        folder = f"{name}.partial"
        pushed = target.push(staged, target.remote_path("releases", folder))
        if pushed.code != 0:
            step("discard", folder)
            return Outcome(target.name, "failed", name, f"upload failed: {pushed.output}")
    kept = f"; {current} stays current" if current else ""
    for command in ("venv", "check"):
        result = step(command, folder)
        if result.code != 0:
            step("discard", folder)
            return Outcome(target.name, "failed", name,
                           f"({command} failed on the target{kept}): {reason_line(result.output)}")
    if folder != name:
        finished = step("finish", name)
        if finished.code != 0:
            return Outcome(target.name, "failed", name, f"(finish failed{kept}): "
                           f"{reason_line(finished.output)}")
    said = ""
    for command, args in (("activate", (name,)), ("service", service),
                          ("prune", (str(keep),))):
        result = step(command, *args)
        if result.code != 0:
            return Outcome(target.name, "failed", name,
                           f"({command} failed): {reason_line(result.output)}")
        if command == "service":
            said = service_line(result.output)
    return Outcome(target.name, "deployed", name,
                   "(device check passed, current switched)" + (f"\n  {said}" if said else ""))


def service_line(output: str) -> str:
    """What the service step said about a live page (how to open it), else nothing: the plain
    runner's service needs no line of its own."""
    lines = [line for line in output.splitlines() if line.startswith("service:")]
    return lines[-1] if lines and "serve" in lines[-1] else ""


def rollback(target, log) -> Outcome:
    """Switch ``current`` back to the newest good release before it and restart the service."""
    script = tools_script(target)
    lock = target.hold_lock(script, LOCK_WAIT_S)
    if not lock.held:
        return Outcome(target.name, "failed", "", f"({reason_line(lock.output)})")
    try:
        previous = target.run(script, "previous", target.base)
        name = previous.output.strip().splitlines()[-1] if previous.output.strip() else ""
        if previous.code != 0 or not name:
            return Outcome(target.name, "failed", "",
                           "(no earlier good release to roll back to)")
        for step, args in (("activate", (name,)), ("restart", ())):
            result = target.run(script, step, target.base, *args)
            log(f"{target.name}: {result.output}")
            if result.code != 0:
                return Outcome(target.name, "failed", name,
                               f"({step} failed): {reason_line(result.output)}")
        return Outcome(target.name, "rolled back", name, "(current switched back)")
    finally:
        lock.release()


def reason_line(text: str) -> str:
    """The line that says why: the first ``error:`` line if there is one (a check prints
    runtime INFO lines after it), else the last non-empty line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error:"):
            return line
    return lines[-1] if lines else ""


last_line = reason_line  # the name earlier callers used
