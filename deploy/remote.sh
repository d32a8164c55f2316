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

current_name() {
    if [ -L "$base/current" ]; then basename "$(readlink "$base/current")"; fi
}

case $command in
state)
    # What is there: the current release and all release names, oldest first.
    mkdir -p "$releases"
    echo "current=$(current_name)"
    ls -1 "$releases" | grep -v '\.partial$' | sort | sed 's/^/release=/'
    ;;
finish-upload)
    # The upload went to NAME.partial; only a complete copy gets the real name.
    name=$1
    rm -rf "$releases/$name"
    mv "$releases/$name.partial" "$releases/$name"
    ;;
venv)
    # The shared virtualenv with the device-only requirements; reinstalled only when they change.
    name=$1
    requirements="$releases/$name/device/requirements.txt"
    [ -x "$base/venv/bin/python" ] || python3 -m venv "$base/venv"
    wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
    have=$(cat "$base/venv/.requirements.sha256" 2>/dev/null || true)
    if [ "$wanted" != "$have" ]; then
        "$base/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$wanted" > "$base/venv/.requirements.sha256"
        echo "venv: installed device requirements"
    else
        echo "venv: requirements unchanged"
    fi
    ;;
check)
    # The on-device self-test; its exit status decides whether the release goes live.
    name=$1
    cd "$releases/$name"
    "$base/venv/bin/python" -m device check --bundle bundle
    ;;
activate)
    # Atomic switch: a new symlink renamed over the old one.
    name=$1
    [ -d "$releases/$name" ] || { echo "no release $name" >&2; exit 3; }
    ln -sfn "releases/$name" "$base/.current.tmp"
    mv -Tf "$base/.current.tmp" "$base/current"
    echo "current -> $name"
    ;;
discard)
    # A release that failed its check is kept aside for inspection, never made current.
    name=$1
    rm -rf "$releases/$name.failed"
    mv "$releases/$name" "$releases/$name.failed"
    ;;
prune)
    # Keep the newest KEEP good releases (and always the current one), one failed at most.
    keep=$1
    now=$(current_name)
    ls -1 "$releases" | grep -v -e '\.partial$' -e '\.failed$' | sort -r | tail -n +$((keep + 1)) |
        while read -r old; do [ "$old" = "$now" ] || rm -rf "$releases/$old"; done
    ls -1 "$releases" | grep '\.failed$' | sort -r | tail -n +2 |
        while read -r old; do rm -rf "$releases/$old"; done
    ;;
previous)
    # The newest good release older than the current one (what rollback switches to).
    now=$(current_name)
    ls -1 "$releases" | grep -v -e '\.partial$' -e '\.failed$' | sort |
        awk -v now="$now" '$0 == now { print prev; exit } { prev = $0 }'
    ;;
service)
    # A systemd user unit running the runner headless at boot, restarted on failure, logging
    # to the journal. Skipped, with a message, where there is no systemd user instance.
    mode=$1
    source=$2
    if [ "$mode" = none ]; then echo "service: not installed (--systemd none)"; exit 0; fi
    if ! command -v systemctl >/dev/null 2>&1 || ! systemctl --user show-environment >/dev/null 2>&1; then
        echo "service: systemd (user instance) not available on this host; not installed." \
             "Start by hand: cd $base/current && $base/venv/bin/python -m device run --bundle bundle --source $source --headless"
        exit 0
    fi
    unit_dir="$HOME/.config/systemd/user"
    mkdir -p "$unit_dir"
    cat > "$unit_dir/$service.service.tmp" <<UNIT
[Unit]
Description=edgekit classifier (device runner)
After=network.target

[Service]
WorkingDirectory=$base/current
ExecStart=$base/venv/bin/python -m device run --bundle bundle --source $source --headless
Restart=on-failure
RestartSec=3

[Install]
WantedBy=default.target
UNIT
    mv "$unit_dir/$service.service.tmp" "$unit_dir/$service.service"
    systemctl --user daemon-reload
    systemctl --user enable "$service.service" >/dev/null 2>&1
    systemctl --user restart "$service.service"
    echo "service: $service.service (user) restarted; logs: journalctl --user -u $service -f"
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
