"""``python -m deploy``: put a bundle and the device runner on Raspberry Pis (or a folder).

Examples::

    python -m deploy push --task digits --hosts "pi@kitchen pi@garage"     # make deploy
    python -m deploy push --task fruits --hosts pi@pi4 --port 2222 --dir ~/edge
    python -m deploy rollback --hosts pi@kitchen                            # make rollback
    python -m deploy rollback --local /tmp/fake-pi
    python -m deploy local --task digits --dir /tmp/fake-pi                 # make deploy-local
    python -m deploy push --bundle ~/pulled/digits/bundle --hosts pi@kitchen  # any bundle folder
    python -m deploy stage --task digits --out /tmp/rel    # release + tarball (Ansible ships it)

Each host gets releases/<UTC time>-<content hash>/ (device package, requirements, bundle), a
shared venv with the device-only requirements (no TensorFlow), and `python -m device check` run
there. Only if that passes does `current` switch (atomically) and the systemd user service
restart; otherwise the running release stays as it was. SSH uses your ssh config and keys.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from device.errors import UserError

#: Local staging folders: ``/tmp/edgekit-release-<pid>-*``; a later deploy removes those whose
#: process is gone (a ``kill -9`` runs no cleanup).
STAGING_PREFIX = "edgekit-release-"


#: The most releases --keep may ask for (the target's shell compares it as an integer).
MAX_KEEP = 1000


def keep_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 (the newest good release is "
                                         "always kept)")
    if value > MAX_KEEP:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_KEEP}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be from 1 to 65535")
    return value


def unit_word(text: str) -> str:
    """A value written into the service's command line (``--source``, ``--serve-host``): one
    word, since the systemd unit and remote.sh split on spaces and quotes would be literal."""
    if not text or any(c.isspace() or c in "'\"\\$`;&|<>" for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} must be one word without spaces, quotes or "
                                         "shell characters (rename the file or folder)")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ssh = argparse.ArgumentParser(add_help=False)
    ssh.add_argument("--hosts", required=True,
                     help="space-separated user@host targets, deployed in parallel")
    ssh.add_argument("--port", type=port_number, default=22)
    ssh.add_argument("--dir", default="~/edge", help="base folder on the target (default ~/edge)")
    ssh.add_argument("--ssh-opts", default="", help="extra ssh options, e.g. '-i ~/.ssh/pi_key'")
    release = argparse.ArgumentParser(add_help=False)
    release.add_argument("--task", help="digits, fruits or handsigns: deploys "
                         "ARTIFACTS/TASK/bundle")
    release.add_argument("--artifacts", default="artifacts", type=Path)
    release.add_argument("--bundle", type=Path, help="a bundle folder to deploy instead of "
                         "--task's (e.g. one pulled by `python -m fog`)")
    release.add_argument("--keep", type=keep_count, default=5,
                         help="good releases kept per target (at least 1; default 5)")
    release.add_argument("--force", action="store_true",
                         help="deploy even if the bundle's default model failed its export "
                              "checks (the device then runs the best model that passed)")
    release.add_argument("--systemd", choices=["user", "none"], default="user",
                         help="install/restart the systemd user service (default user)")
    release.add_argument("--source", default="0", type=unit_word,
                         help="what the service classifies (default camera 0; 'picamera' on a "
                              "Pi camera)")
    release.add_argument("--serve", type=port_number, metavar="PORT",
                         help="run the service as `device serve` on PORT: the runner plus its "
                              "live page (make deploy SERVE=8080); default: `device run`, "
                              "JSON lines to the journal")
    release.add_argument("--serve-host", default="127.0.0.1", type=unit_word, metavar="HOST",
                         help="the address the live page binds on the target (default "
                              "127.0.0.1: open it through `ssh -L PORT:127.0.0.1:PORT`; "
                              "0.0.0.0 exposes it to the network, add --token in ARGS there)")
    release.add_argument("-v", "--verbose", action="store_true", help="show each remote step")
    commands.add_parser("push", parents=[ssh, release], help="deploy to hosts over SSH")
    stage_only = commands.add_parser("stage", parents=[release], help="only build the release "
                                     "folder and tarball (what the Ansible playbook ships)")
    stage_only.add_argument("--out", required=True, type=Path, help="an empty or new folder")
    local = commands.add_parser("local", parents=[release], help="deploy into a local folder")
    local.add_argument("--dir", required=True, help="target folder")
    back = commands.add_parser("rollback", help="switch targets back to their previous release")
    where = back.add_mutually_exclusive_group(required=True)
    where.add_argument("--hosts", help="space-separated user@host targets")
    where.add_argument("--local", metavar="DIR", help="a folder deployed with `deploy local`")
    back.add_argument("--port", type=port_number, default=22)
    back.add_argument("--dir", default="~/edge", help="base folder on the hosts")
    back.add_argument("--ssh-opts", default="")
    back.add_argument("-v", "--verbose", action="store_true")
    return parser


def writable_folder(text: str, flag: str) -> str:
    """``--dir``/``--local`` as an absolute folder this user can write, or one clear line."""
    if not text.strip():
        raise UserError(f"{flag} is empty: pass the folder to deploy into (e.g. {flag} /tmp/pi)")
    try:
        path = Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before Python 3.13
        raise UserError(f"{flag} {text} cannot be resolved ({exc}): pass a real folder") from None
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder: pass a folder to deploy into")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path} cannot be written ({exc.strerror or exc}): pass a folder "
                        "you can write to") from None
    return str(path)


def targets_from(args):
    from deploy.targets import LocalTarget, SshTarget

    if args.command == "local":
        return [LocalTarget(writable_folder(args.dir, "--dir"))]
    if getattr(args, "local", None):
        return [LocalTarget(writable_folder(args.local, "--local"))]
    hosts = args.hosts.split()
    if not hosts:
        raise UserError("--hosts is empty: pass PI=user@host (several separated by spaces)")
    options = shlex.split(args.ssh_opts)
    return [SshTarget(host, args.dir, args.port, options) for host in hosts]


def verdict_gate(bundle_dir: Path, force: bool) -> list[str]:
    """Refuse a bundle whose default model failed its export checks (unless ``force``); return
    warning lines for failing models that are not the default (shipped, never run)."""
    from device.bundle import open_bundle, verdict_state, verdict_summary
    from device.check import default_model

    bundle = open_bundle(bundle_dir, verify=False)
    failing = {key: verdict_summary(entry) for key, entry in bundle.models.items()
               if verdict_state(entry) == "failed"}
    if failing and len(failing) == len(bundle.models):
        raise UserError(f"every model in {bundle_dir} failed its export checks: re-export it "
                        "(see its report.md)")
    default = default_model(bundle)
    if default in failing and not force:
        raise UserError(f"the bundle's default model {default} failed its export checks "
                        f"({failing[default]}): re-export, or pass --force to deploy it anyway "
                        f"(the device then runs {bundle.choose()})")
    return [f"warning: {key} failed its export checks ({why}); it is shipped but the device "
            "never runs it by default" for key, why in failing.items()]


def bundle_of(args) -> Path:
    """--bundle as given, else ARTIFACTS/TASK/bundle."""
    if args.bundle and args.task:
        raise UserError("pass --task or --bundle, not both")
    if args.bundle:
        return args.bundle
    if not args.task:
        raise UserError("say what to deploy: --task TASK (its ARTIFACTS/TASK/bundle) or "
                        "--bundle FOLDER")
    return args.artifacts / args.task / "bundle"


def stage_release(args) -> int:
    """``deploy stage``: the release a deploy would ship, as OUT/release/ and OUT/release.tgz,
    plus OUT/tools/remote.sh; prints {name, sha, release, archive, tools} as JSON. The Ansible
    playbook ships this with its own modules and runs the same remote.sh steps."""
    import json
    import tarfile

    from deploy.release import REMOTE_SCRIPT, release_name, stage

    bundle_dir = bundle_of(args)
    for line in verdict_gate(bundle_dir, args.force):
        print(line, file=sys.stderr)
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty: pass a new folder")
    staged, tools = out / "release", out / "tools"
    tools.mkdir(parents=True)
    sha = stage(bundle_dir, staged)
    (tools / REMOTE_SCRIPT).write_bytes((staged / REMOTE_SCRIPT).read_bytes())
    with tarfile.open(out / "release.tgz", "w:gz") as archive:
        archive.add(staged, arcname=".")
    print(json.dumps({"name": release_name(sha), "sha": sha, "release": str(staged),
                      "archive": str(out / "release.tgz"), "tools": str(tools)}))
    return 0


def run_all(targets, work, cancel: threading.Event) -> list:
    """``work(target)`` on every target in parallel. On Ctrl-C/SIGTERM no new remote step
    starts; the steps in flight finish, so no target is left between two steps' states."""
    pool = ThreadPoolExecutor(max_workers=len(targets))
    try:
        futures = [pool.submit(work, target) for target in targets]
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True)


def service_args(args) -> tuple[str, ...]:
    """remote.sh's ``service`` arguments: MODE SOURCE [PORT HOST] (a port runs `serve`)."""
    service = (args.systemd, args.source)
    if args.serve:
        service += (str(args.serve), args.serve_host)
    return service


def push_release(args, targets, log, cancel: threading.Event) -> list:
    from deploy.deployer import deploy_to
    from deploy.release import release_name, stage
    from device.atomic import owned_temp_dir, sweep_stale

    bundle_dir = bundle_of(args)
    for line in verdict_gate(bundle_dir, args.force):
        print(line, file=sys.stderr)
    sweep_stale(tempfile.gettempdir(), STAGING_PREFIX)
    tmp = owned_temp_dir(tempfile.gettempdir(), STAGING_PREFIX)
    try:
        staged, tools = tmp / "release", tmp / "tools"
        tools.mkdir()
        sha = stage(bundle_dir, staged)
        (tools / "remote.sh").write_bytes((staged / "remote.sh").read_bytes())
        name = release_name(sha)
        service = service_args(args)
        return run_all(targets, lambda t: deploy_to(t, staged, tools, sha, name, args.keep,
                                                    service, log, cancel),
                       cancel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def roll_back(targets, log, cancel: threading.Event) -> list:
    """Push the current remote.sh (a target deployed by an older toolkit may lack ``lock``),
    then roll each target back."""
    from deploy.deployer import rollback
    from deploy.release import REMOTE_SCRIPT
    from device.atomic import owned_temp_dir

    tools = owned_temp_dir(tempfile.gettempdir(), STAGING_PREFIX)
    try:
        (tools / REMOTE_SCRIPT).write_bytes(
            (Path(__file__).with_name(REMOTE_SCRIPT)).read_bytes())

        def work(target):
            from deploy.deployer import Outcome
            pushed = target.push(tools, target.remote_path(".tools"))
            if pushed.code != 0:
                return Outcome(target.name, "failed", "", f"cannot reach target: {pushed.output}")
            return rollback(target, log)
        return run_all(targets, work, cancel)
    finally:
        shutil.rmtree(tools, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if args.verbose else \
        (lambda text: None)
    from device.interrupts import terminate_as_interrupt

    cancel = threading.Event()
    try:
        with terminate_as_interrupt():
            if args.command == "stage":
                return stage_release(args)
            targets = targets_from(args)
            if args.command == "rollback":
                outcomes = roll_back(targets, log, cancel)
            else:
                outcomes = push_release(args, targets, log, cancel)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; every target's running release was left as it was",
              file=sys.stderr)
        return 130
    for outcome in outcomes:
        print(outcome.line())
    failed = [o for o in outcomes if not o.ok]
    if failed:
        reasons = "; ".join(f"{o.host}: {o.detail}" for o in failed)
        print(f"error: {len(failed)} of {len(outcomes)} target(s) failed, their running release "
              f"was left as it was: {reasons}", file=sys.stderr)
        return 1
    return 0
