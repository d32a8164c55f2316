#!/bin/sh
# The target side of `make deploy`: shipped inside every release and run over SSH as
#   sh remote.sh COMMAND BASE [ARGS...]
# BASE holds releases/<name>/, current -> releases/<name>, and the shared venv/.
# POSIX sh + coreutils only (Raspberry Pi OS, Debian, a laptop).
set -eu

command=$1
base=$2
shift 2
case $base in "~"*) base="$HOME${base#\~}" ;; esac
releases="$base/releases"
service=edgekit

good=.edgekit-good   # marker file inside a release: written only after its check passed

current_name() {
    if [ -L "$base/current" ]; then basename "$(readlink "$base/current")"; fi
}

# Good releases (checked, final name), oldest first. Names start with a UTC timestamp.
good_releases() {
    for dir in "$releases"/*/; do
        [ -f "$dir$good" ] && basename "$dir"
    done | sort
}

case $command in
lock)
    # Held for a whole deploy: prints "locked", then holds an exclusive lock on BASE/.deploy.lock
    # until its stdin closes, i.e. until the deploying process ends, however it ends (kill -9
    # included: the pipe closes with it). A second deploy waits up to WAIT seconds, then refuses.
    wait_s=${1:-60}
    mkdir -p "$base"
    exec python3 -c '
import fcntl, sys, time
path, wait = sys.argv[1], float(sys.argv[2])
handle = open(path, "a")
deadline = time.monotonic() + wait
while True:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if time.monotonic() >= deadline:
            print("error: another deploy to this target is in progress (%s is locked); "
                  "try again when it has finished" % path, flush=True)
            sys.exit(3)
        time.sleep(0.2)
print("locked", flush=True)
sys.stdin.read()
' "$base/.deploy.lock" "$wait_s"
    ;;
state)
    # What is there: the current release and the good releases, oldest first. Run under the
    # lock, so anything half-made is a leftover of a deploy that was killed: swept here.
    mkdir -p "$releases"
    for dir in "$releases"/*.partial; do
        [ -d "$dir" ] && rm -rf "$dir" && echo "swept: $(basename "$dir") (left by a killed deploy)"
    done
    rm -f "$base/.current.tmp"
    echo "current=$(current_name)"
    good_releases | sed 's/^/release=/'
    ;;
venv)
    # The shared virtualenv with the device-only requirements; reinstalled only when they change.
    dir=$1
    requirements="$releases/$dir/device/requirements.txt"
    [ -x "$base/venv/bin/python" ] || python3 -m venv "$base/venv"
    wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
    have=$(cat "$base/venv/.requirements.sha256" 2>/dev/null || true)
    if [ "$wanted" != "$have" ]; then
        "$base/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$wanted" > "$base/venv/.requirements.sha256.tmp"
        mv -f "$base/venv/.requirements.sha256.tmp" "$base/venv/.requirements.sha256"
        echo "venv: installed device requirements"
    else
        echo "venv: requirements unchanged"
    fi
    ;;
check)
    # The on-device self-test (in NAME.partial for a new release); its exit status decides.
    dir=$1
    cd "$releases/$dir"
    "$base/venv/bin/python" -m device check --bundle bundle
    ;;
finish)
    # The check passed: mark NAME.partial good, then give it its final name (one rename).
    name=$1
    touch "$releases/$name.partial/$good"
    rm -rf "$releases/$name"
    mv "$releases/$name.partial" "$releases/$name"
    ;;
activate)
    # Atomic switch to a good release: a new symlink renamed over the old one.
    name=$1
    [ -f "$releases/$name/$good" ] || { echo "error: $name is not a checked release" >&2; exit 3; }
    ln -sfn "releases/$name" "$base/.current.tmp"
    mv -Tf "$base/.current.tmp" "$base/current"
    echo "current -> $name"
    ;;
discard)
    # A release (or NAME.partial) that failed its check: kept aside for inspection, unmarked.
    dir=$1
    failed="$releases/${dir%.partial}.failed"
    rm -rf "$failed"
    mv "$releases/$dir" "$failed"
    rm -f "$failed/$good"
    ;;
prune)
    # Keep the newest KEEP good releases (at least one: never the newest good one) and the
    # current one; remove releases that were never marked good; keep one failed at most.
    keep=$1
    # A count this shell cannot read (not digits, or past its integer range) prunes nothing:
    # "keep 1" would delete every other good release, the opposite of a large --keep.
    case $keep in ''|*[!0-9]*) echo "prune: keep count '$keep' is not a number; nothing pruned"; exit 0 ;; esac
    if [ ${#keep} -gt 6 ] || [ "$keep" -lt 1 ]; then
        echo "prune: keep count $keep is outside 1-999999; nothing pruned"; exit 0
    fi
    now=$(current_name)
    good_releases | sort -r | tail -n +$((keep + 1)) |
        while read -r old; do [ "$old" = "$now" ] || rm -rf "$releases/$old"; done
    for dir in "$releases"/*/; do
        name=$(basename "$dir")
        case $name in *.partial|*.failed) continue ;; esac
        [ -f "$dir$good" ] || [ "$name" = "$now" ] || rm -rf "$releases/$name"
    done
    ls -1 "$releases" | grep '\.failed$' | sort -r | tail -n +2 |
        while read -r old; do rm -rf "$releases/$old"; done
    ;;
previous)
    # The newest good release older than the current one (what rollback switches to).
    now=$(current_name)
    good_releases | awk -v now="$now" '$0 < now { prev = $0 } END { if (prev != "") print prev }'
    ;;
service|ensure-service)
    # A systemd user unit running the runner headless at boot, restarted on failure, logging
    # to the journal; with a PORT it runs `device serve` instead (the runner plus the live page
    # on HOST:PORT, 127.0.0.1 unless HOST says otherwise). Skipped, with a message, where there
    # is no systemd user instance. `service` always restarts it (a new release is current);
    # `ensure-service` (a deploy of the release already current) only when the unit changed,
    # e.g. from `run` to `serve`, or when it is not running.
    #   service|ensure-service MODE SOURCE [PORT [HOST]]      MODE: user | none
    mode=$1
    source=$2
    port=${3:-}
    host=${4:-127.0.0.1}
    if [ -n "$port" ]; then
        runner="$base/venv/bin/python -m device serve --bundle bundle --source $source --host $host --port $port"
        what="device serve: live view on $host:$port"
        case $host in
            127.0.0.1|localhost) view="from a laptop: ssh -L $port:127.0.0.1:$port $(id -un)@$(hostname), then open http://127.0.0.1:$port/" ;;
            *) view="open http://$(hostname):$port/" ;;
        esac
    else
        runner="$base/venv/bin/python -m device run --bundle bundle --source $source --headless"
        what="device runner"
        view=""
    fi
    if [ "$mode" = none ]; then echo "service: not installed (--systemd none)"; exit 0; fi
    if ! command -v systemctl >/dev/null 2>&1 || ! systemctl --user show-environment >/dev/null 2>&1; then
        echo "service: systemd (user instance) not available on this host; not installed." \
             "Start by hand: cd $base/current && $runner"
        exit 0
    fi
    unit_dir="$HOME/.config/systemd/user"
    mkdir -p "$unit_dir"
    cat > "$unit_dir/$service.service.tmp" <<UNIT
[Unit]
Description=edgekit classifier ($what)
After=network.target

[Service]
WorkingDirectory=$base/current
ExecStart=$runner
Restart=on-failure
RestartSec=3

[Install]
WantedBy=default.target
UNIT
    if cmp -s "$unit_dir/$service.service.tmp" "$unit_dir/$service.service" &&
       [ "$command" = ensure-service ] && systemctl --user is-active --quiet "$service.service"; then
        rm -f "$unit_dir/$service.service.tmp"
        echo "service: $service.service (user) unchanged and running ($what)${view:+; $view}"
        exit 0
    fi
    mv "$unit_dir/$service.service.tmp" "$unit_dir/$service.service"
    systemctl --user daemon-reload
    systemctl --user enable "$service.service" >/dev/null 2>&1
    systemctl --user restart "$service.service"
    echo "service: $service.service (user) restarted ($what)${view:+; $view}; logs: journalctl --user -u $service -f"
    ;;
restart)
    if command -v systemctl >/dev/null 2>&1 && systemctl --user cat "$service.service" >/dev/null 2>&1; then
        systemctl --user restart "$service.service" && echo "service: restarted"
    else
        echo "service: not installed; nothing to restart"
    fi
    ;;
*)
    echo "remote.sh: unknown command $command" >&2
    exit 2
    ;;
esac
