"""``python -m deploy``: put a bundle and the device runner on Raspberry Pis (or a folder).

Examples::

    python -m deploy push --task digits --hosts "pi@kitchen pi@garage"     # make deploy
    python -m deploy push --task fruits --hosts pi@pi4 --port 2222 --dir ~/edge
    python -m deploy rollback --hosts pi@kitchen                            # make rollback
    python -m deploy rollback --local /tmp/fake-pi
    python -m deploy local --task digits --dir /tmp/fake-pi                 # make deploy-local

Each host gets releases/<UTC time>-<content hash>/ (device package, requirements, bundle), a
shared venv with the device-only requirements (no TensorFlow), and `python -m device check` run
there. Only if that passes does `current` switch (atomically) and the systemd user service
restart; otherwise the running release stays as it was. SSH uses your ssh config and keys.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from device.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ssh = argparse.ArgumentParser(add_help=False)
    ssh.add_argument("--hosts", required=True,
                     help="space-separated user@host targets, deployed in parallel")
    ssh.add_argument("--port", type=int, default=22)
    ssh.add_argument("--dir", default="~/edge", help="base folder on the target (default ~/edge)")
    ssh.add_argument("--ssh-opts", default="", help="extra ssh options, e.g. '-i ~/.ssh/pi_key'")
    release = argparse.ArgumentParser(add_help=False)
    release.add_argument("--task", required=True, help="digits, fruits or handsigns")
    release.add_argument("--artifacts", default="artifacts", type=Path)
    release.add_argument("--keep", type=int, default=5, help="releases kept per target")
    release.add_argument("--systemd", choices=["user", "none"], default="user",
                         help="install/restart the systemd user service (default user)")
    release.add_argument("--source", default="0", help="what the service classifies (default "
                         "camera 0; 'picamera' on a Pi camera)")
    release.add_argument("-v", "--verbose", action="store_true", help="show each remote step")
    commands.add_parser("push", parents=[ssh, release], help="deploy to hosts over SSH")
    local = commands.add_parser("local", parents=[release], help="deploy into a local folder")
    local.add_argument("--dir", required=True, help="target folder")
    back = commands.add_parser("rollback", help="switch targets back to their previous release")
    where = back.add_mutually_exclusive_group(required=True)
    where.add_argument("--hosts", help="space-separated user@host targets")
    where.add_argument("--local", metavar="DIR", help="a folder deployed with `deploy local`")
    back.add_argument("--port", type=int, default=22)
    back.add_argument("--dir", default="~/edge", help="base folder on the hosts")
    back.add_argument("--ssh-opts", default="")
    back.add_argument("-v", "--verbose", action="store_true")
    return parser


def targets_from(args):
    from deploy.targets import LocalTarget, SshTarget

    if args.command == "local":
        return [LocalTarget(str(Path(args.dir).expanduser().resolve()))]
    if getattr(args, "local", None):
        return [LocalTarget(str(Path(args.local).expanduser().resolve()))]
    hosts = args.hosts.split()
    if not hosts:
        raise UserError("--hosts is empty: pass PI=user@host (several separated by spaces)")
    options = shlex.split(args.ssh_opts)
    return [SshTarget(host, args.dir, args.port, options) for host in hosts]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if args.verbose else \
        (lambda text: None)
    try:
        from deploy.deployer import deploy_to, rollback

        targets = targets_from(args)
        if args.command == "rollback":
            with ThreadPoolExecutor(max_workers=len(targets)) as pool:
                outcomes = list(pool.map(lambda t: rollback(t, log), targets))
        else:
            from deploy.release import release_name, stage

            bundle_dir = args.artifacts / args.task / "bundle"
            with tempfile.TemporaryDirectory(prefix="edgekit-release-") as tmp:
                staged, tools = Path(tmp) / "release", Path(tmp) / "tools"
                tools.mkdir()
                sha = stage(bundle_dir, staged)
                (tools / "remote.sh").write_bytes((staged / "remote.sh").read_bytes())
                name = release_name(sha)
                with ThreadPoolExecutor(max_workers=len(targets)) as pool:
                    outcomes = list(pool.map(
                        lambda t: deploy_to(t, staged, tools, sha, name, args.keep, args.systemd,
                                            args.source, log), targets))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        print(outcome.line())
    failed = [o for o in outcomes if not o.ok]
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} target(s) failed; their running release "
              "was left as it was", file=sys.stderr)
        return 1
    return 0
