"""``python -m fog``: train on a remote (GPU) machine, bring the bundle home, deploy it.

Examples::

    python -m fog run --task handsigns --host me@gpu-box --data ../shared/datasets
    python -m fog run --task digits --host me@gpu-box --train-args="--embedded --epochs 3" \\
        --pi "pi@kitchen pi@garage"
    python -m fog status --host me@gpu-box        # runs there: running, done, failed
    python -m fog attach --host me@gpu-box        # follow the running (or last) run's log
    python -m fog pull   --host me@gpu-box        # bring the newest finished run home
    python -m fog stop   --host me@gpu-box [--run ID]   # end it and remove its files there

The laptop needs no TensorFlow: only this project's device install, ssh and rsync. `run` sends
the project's files as they are in the working tree (git's list: tracked and untracked-but-not-
ignored, uncommitted edits included) and the dataset folder (cached there), runs `make setup`
on the host once (GPU TensorFlow where nvidia-smi answers; or --venv names an existing one),
then train + export DETACHED from the SSH session while the log streams here. If the connection
drops, training goes on: `attach` follows it again, `pull` fetches the result once it is done.
The pull verifies every file against the host's checksums and runs `device check` here before
it replaces artifacts/TASK; any failure leaves the previous artifacts as they were.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from device.errors import UserError
from device.tasks import TASKS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    host = argparse.ArgumentParser(add_help=False)
    host.add_argument("--host", default=os.environ.get("FOG_HOST"),
                      help="user@host of the training machine (default $FOG_HOST)")
    host.add_argument("--port", type=int, help="ssh port (default: your ssh config's, else 22)")
    host.add_argument("--ssh-opts", default="", help="extra ssh options, e.g. '-i ~/.ssh/key'")
    host.add_argument("--root", default="~/edgekit-fog",
                      help="working folder on the host (default ~/edgekit-fog)")
    local = argparse.ArgumentParser(add_help=False)
    local.add_argument("--artifacts", type=Path, default=Path("artifacts"),
                       help="local artifacts root (default artifacts/)")
    local.add_argument("--bwlimit", type=int, metavar="KBPS",
                       help="cap the pull's bandwidth (rsync --bwlimit)")
    pi = argparse.ArgumentParser(add_help=False)
    pi.add_argument("--pi", default="", help="then deploy the bundle to these user@host "
                    "targets (space-separated), as `make deploy` does")
    pi.add_argument("--pi-port", type=int, default=22)
    pi.add_argument("--pi-dir", default="~/edge")
    pi.add_argument("--pi-ssh-opts", default="")
    pi.add_argument("--deploy-args", default="", help="extra `python -m deploy push` options, "
                    "e.g. '--systemd none'")
    run = commands.add_parser("run", parents=[host, local, pi], help="sync, train + export "
                              "remotely (detached), stream the log, pull[, deploy]")
    run.add_argument("--task", required=True, choices=list(TASKS))
    run.add_argument("--data", type=Path, default=os.environ.get("DATA_DIR"),
                     help="dataset folder to send (default $DATA_DIR; none for --embedded)")
    run.add_argument("--venv", default="", help="use this virtualenv on the host instead of "
                     "`make setup` into ROOT/venv")
    run.add_argument("--train-args", default="", help="extra `python -m train TASK` options")
    run.add_argument("--export-args", default="", help="extra `python -m export TASK` options")
    run.add_argument("--detach", action="store_true",
                     help="start the run and return (attach/pull later)")
    for name, helptext in (("attach", "follow a run's log until it ends (default: the running "
                                      "one, else the newest)"),
                           ("pull", "bring a finished run's artifacts/TASK home (default: the "
                                    "newest run)"),
                           ("stop", "end a run and remove its files on the host (default: the "
                                    "running one)")):
        sub = commands.add_parser(name, parents=[host, local, pi] if name == "pull" else [host],
                                  help=helptext)
        sub.add_argument("--run", help="run id (see `status`)")
    commands.add_parser("status", parents=[host], help="list the runs on the host")
    return parser


def host_from(args):
    from fog.ssh import Host

    if not args.host:
        raise UserError("--host user@host is required (or set FOG_HOST)")
    return Host(args.host, args.root, args.port, shlex.split(args.ssh_opts))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pull_and_deploy(host, args, run_id: str, task: str) -> int:
    from fog.pull import pull

    final = pull(host, run_id, task, args.artifacts, args.bwlimit)
    say(f"fog: pulled run {run_id} -> {final} (checksums verified, device check passed)")
    if not args.pi:
        return 0
    command = [sys.executable, "-m", "deploy", "push", "--bundle", str(final / "bundle"),
               "--hosts", args.pi, "--port", str(args.pi_port), "--dir", args.pi_dir,
               "--ssh-opts", args.pi_ssh_opts, *shlex.split(args.deploy_args)]
    say(f"fog: deploying to {args.pi}")
    return subprocess.run(command).returncode


def dataset_to_send(args) -> Path | None:
    """The dataset folder to send, or None: ``--embedded`` training reads no dataset, so neither
    $DATA_DIR nor ``--data`` is sent for it (a large MNIST folder would only fill the host)."""
    if "--embedded" in shlex.split(args.train_args):
        if args.data:
            say(f"fog: not sending {args.data}: --embedded trains on the bundled digits")
        return None
    return Path(args.data) if args.data else None


def command_run(args) -> int:
    from fog.runs import follow, raise_for_result, start

    host = host_from(args)
    run_id = start(host, args.task, args.venv, args.train_args, args.export_args,
                   dataset_to_send(args), say)
    say(f"fog: run {run_id} started on {host.target}, detached: if this connection drops, "
        f"training goes on (`python -m fog attach --host {host.target}` follows it again)")
    if args.detach:
        return 0
    raise_for_result(host, run_id, follow(host, run_id))
    return pull_and_deploy(host, args, run_id, args.task)


def command_attach(args) -> int:
    from fog.runs import follow, pick, raise_for_result

    host = host_from(args)
    info = pick(host, args.run)
    say(f"fog: following run {info.id} ({info.state}) on {host.target}")
    raise_for_result(host, info.id, follow(host, info.id))
    say(f"fog: run {info.id} done: `python -m fog pull --host {host.target}` brings it home")
    return 0


def command_pull(args) -> int:
    from fog.runs import pick, raise_for_result

    host = host_from(args)
    info = pick(host, args.run)
    if info.running:
        raise UserError(f"run {info.id} is still training on {host.target}: `python -m fog "
                        f"attach --host {host.target}` follows it; pull once it is done")
    raise_for_result(host, info.id, info.state.replace(":", " "))
    return pull_and_deploy(host, args, info.id, info.task)


def command_stop(args) -> int:
    from fog.runs import pick

    host = host_from(args)
    info = pick(host, args.run, running_only=not args.run)
    done = host.run("stop", info.id, timeout=60)
    if done.returncode != 0:
        raise UserError(f"{host.target}: could not stop {info.id}: {done.stderr.strip()}")
    print(f"{info.id}: {'stopped and ' if info.running else ''}removed from {host.target}")
    return 0


def command_status(args) -> int:
    from fog.runs import runs

    host = host_from(args)
    found = runs(host)
    if not found:
        print(f"{host.target}: no runs under {host.root}")
    for info in found:
        print(info.line())
    return 0


COMMANDS = {"run": command_run, "attach": command_attach, "pull": command_pull,
            "stop": command_stop, "status": command_status}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; local artifacts left as they were", file=sys.stderr)
        return 130
