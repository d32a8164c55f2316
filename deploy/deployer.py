"""Deploying a release to one target, and rolling one back.

Order matters: upload under a temporary name, install requirements, run ``device check`` on the
target, and only then switch ``current`` and restart the service. Any failure before the switch
leaves the running release untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.release import REMOTE_SCRIPT


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


def deploy_to(target, staged: Path, tools: Path, sha: str, name: str, keep: int, systemd: str,
              source: str, log) -> Outcome:
    """Deploy the staged release to ``target``; never raises for remote failures."""
    base = target.base
    pushed = target.push(tools, target.remote_path(".tools"))
    if pushed.code != 0:
        return Outcome(target.name, "failed", name, f"cannot reach target: {pushed.output}")
    script = tools_script(target)
    state = target.run(script, "state", base)
    if state.code != 0:
        return Outcome(target.name, "failed", name, f"cannot read state: {state.output}")
    current, releases = parse_state(state.output)
    if current.endswith(f"-{sha}"):
        return Outcome(target.name, "unchanged", current,
                       "(already current: same bundle and runner, nothing to do)")
    existing = [r for r in releases if r.endswith(f"-{sha}")]
    if existing:
        name = existing[-1]
        log(f"{target.name}: release {name} is already there, re-checking it")
    else:
        partial = target.remote_path("releases", f"{name}.partial")
        pushed = target.push(staged, partial)
        if pushed.code != 0:
            return Outcome(target.name, "failed", name, f"upload failed: {pushed.output}")
        done = target.run(script, "finish-upload", base, name)
        if done.code != 0:
            return Outcome(target.name, "failed", name, f"upload failed: {done.output}")
    for step, args in (("venv", (name,)), ("check", (name,))):
        result = target.run(script, step, base, *args)
        log(f"{target.name}: {step}\n{result.output}")
        if result.code != 0:
            target.run(script, "discard", base, name)
            kept = f"; {current} stays current" if current else ""
            return Outcome(target.name, "failed", name,
                           f"({step} failed on the target{kept}): {last_line(result.output)}")
    for step, args in (("activate", (name,)), ("service", (systemd, source)),
                       ("prune", (str(keep),))):
        result = target.run(script, step, base, *args)
        log(f"{target.name}: {result.output}")
        if result.code != 0:
            return Outcome(target.name, "failed", name, f"({step} failed): {result.output}")
    return Outcome(target.name, "deployed", name, "(device check passed, current switched)")


def rollback(target, log) -> Outcome:
    """Switch ``current`` back to the newest good release before it and restart the service."""
    script = tools_script(target)
    previous = target.run(script, "previous", target.base)
    name = previous.output.strip().splitlines()[-1] if previous.output.strip() else ""
    if previous.code != 0 or not name:
        return Outcome(target.name, "failed", "", "(no earlier release to roll back to)")
    for step, args in (("activate", (name,)), ("restart", ())):
        result = target.run(script, step, target.base, *args)
        log(f"{target.name}: {result.output}")
        if result.code != 0:
            return Outcome(target.name, "failed", name, f"({step} failed): {result.output}")
    return Outcome(target.name, "rolled back", name, "(current switched back)")


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
