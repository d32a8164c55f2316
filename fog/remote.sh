#!/bin/sh
# The training host's side of `python -m fog`. Control commands arrive over SSH as
#   ssh HOST sh -s -- COMMAND ROOT [ARGS...] < fog/remote.sh
# (so they work before the first sync); the detached job runs the synced copy from disk.
# ROOT holds project/ (the synced tree), data/ (the dataset cache), venv/ (from `make setup`),
# runs/<id>/ (log, pid, result, artifacts/) and lock (held by the running job: flock).
# POSIX sh + coreutils + util-linux flock + GNU tail.
set -eu

command=$1
root=$2
shift 2
case $root in "~"*) root="$HOME${root#\~}" ;; esac
runs="$root/runs"

running_id() {
    # The id of the run holding the lock, or nothing when the host is idle.
    [ -f "$root/lock" ] || return 0
    if ! flock -n "$root/lock" true 2>/dev/null; then cat "$root/current-run" 2>/dev/null || echo "?"; fi
}

write_result() {
    # "PHASE CODE" (done 0, setup 1, train 2, export 1, ...), written atomically.
    printf '%s %s\n' "$1" "$2" > "$run/result.tmp"
    mv -f "$run/result.tmp" "$run/result"
}

case $command in
prepare)
    # Folders exist and the host is idle; a busy host answers "busy ID" and exits 75.
    mkdir -p "$root/project" "$root/data" "$runs"
    busy=$(running_id)
    if [ -n "$busy" ]; then echo "busy $busy"; exit 75; fi
    echo "idle"
    ;;
start)
    # start ID TASK VENV TRAIN_ARGS EXPORT_ARGS: take the lock, then run `job` detached from
    # this SSH session (its own session, stdin closed, output to the run's log). The job
    # inherits the locked descriptor, so the lock lives exactly as long as the job does.
    id=$1 task=$2 venv=$3 train_args=$4 export_args=$5
    mkdir -p "$runs"
    exec 9>>"$root/lock"
    if ! flock -n 9; then echo "busy $(cat "$root/current-run" 2>/dev/null || echo '?')"; exit 75; fi
    run="$runs/$id"
    mkdir -p "$run"
    printf '%s\n' "$id" > "$root/current-run"
    printf 'task=%s\nstarted=%s\ntrain_args=%s\nexport_args=%s\n' "$task" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$train_args" "$export_args" > "$run/info"
    setsid nohup sh "$root/project/fog/remote.sh" job "$root" "$id" "$task" "$venv" \
        "$train_args" "$export_args" </dev/null >"$run/log" 2>&1 &
    echo $! > "$run/pid"
    echo "started $id"
    ;;
job)
    # The run itself: set-up (once), train, export, checksums. Every phase logs to the run's log.
    id=$1 task=$2 venv=$3 train_args=$4 export_args=$5
    run="$runs/$id"
    trap 'write_result stopped 143; exit 143' TERM
    trap 'write_result stopped 129; exit 129' HUP
    cd "$root/project"
    if [ -z "$venv" ]; then
        venv="$root/venv"
        wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
        if [ "$(cat "$venv/.fog-setup" 2>/dev/null || true)" != "$wanted" ]; then
            echo "== fog: make setup (once per pyproject.toml) into $venv"
            if ! make setup VENV="$venv"; then write_result setup 1; exit 1; fi
            echo "$wanted" > "$venv/.fog-setup"
        fi
    fi
    py="$venv/bin/python"
    echo "== fog: python $py"
    if [ ! -x "$py" ]; then
        echo "error: $py does not exist: --venv must name a virtualenv folder on the host"
        write_result setup 1; exit 1
    fi
    if ! "$py" -c "import tensorflow" >/dev/null 2>"$run/setup.err"; then
        echo "error: $venv has no TensorFlow: $(tail -n 1 "$run/setup.err")"
        write_result setup 1; exit 1
    fi
    export DATA_DIR="$root/data"
    out="$run/artifacts"
    echo "== fog: train $task $train_args"
    # shellcheck disable=SC2086  # the user's arguments, split as they typed them
    "$py" -m train "$task" --out "$out" $train_args || { code=$?; write_result train "$code"; exit "$code"; }
    echo "== fog: export $task $export_args"
    # shellcheck disable=SC2086
    "$py" -m export "$task" --artifacts "$out" $export_args || { code=$?; write_result export "$code"; exit "$code"; }
    (cd "$out/$task" && find . -type f ! -name '*.tmp' | sort | sed 's|^\./||' |
        while IFS= read -r f; do sha256sum "$f"; done) > "$out/$task.sha256.tmp" ||
        { write_result checksums 1; exit 1; }
    mv -f "$out/$task.sha256.tmp" "$out/$task.sha256"
    echo "== fog: done: $out/$task ($(wc -l < "$out/$task.sha256") files, checksums written)"
    write_result done 0
    ;;
follow)
    # follow ID: the log from its start, live, until the job ends; then its result.
    id=$1
    run="$runs/$id"
    [ -d "$run" ] || { echo "no run $id" >&2; exit 3; }
    pid=$(cat "$run/pid" 2>/dev/null || echo 0)
    if kill -0 "$pid" 2>/dev/null; then
        tail -n +1 -F --pid="$pid" "$run/log" 2>/dev/null
    else
        cat "$run/log"
    fi
    echo "== fog: result $(cat "$run/result" 2>/dev/null || echo 'lost 1')"
    ;;
status)
    # One line per run, oldest first: ID STATE TASK STARTED.
    [ -d "$runs" ] || exit 0
    busy=$(running_id)
    for run in "$runs"/*/; do
        [ -d "$run" ] || continue
        id=$(basename "$run")
        task=$(sed -n 's/^task=//p' "$run/info" 2>/dev/null)
        started=$(sed -n 's/^started=//p' "$run/info" 2>/dev/null)
        if [ "$id" = "$busy" ]; then state=running
        elif [ -f "$run/result" ]; then state=$(tr ' ' ':' < "$run/result")
        else state=lost; fi
        echo "$id $state $task $started"
    done
    ;;
space)
    # Free space (kB) where ROOT lives: tells a full disk from other transfer failures.
    mkdir -p "$root" 2>/dev/null || true
    df -Pk "$root" | awk 'NR == 2 { print $4 }'
    ;;
tail)
    # tail ID N: the last N lines of the log (for error lines).
    tail -n "$2" "$runs/$1/log" 2>/dev/null || true
    ;;
stop)
    # stop ID: end the run's process group (TERM, then KILL) and remove its files.
    id=$1
    run="$runs/$id"
    [ -d "$run" ] || { echo "no run $id" >&2; exit 3; }
    pid=$(cat "$run/pid" 2>/dev/null || echo 0)
    if [ "$pid" -gt 1 ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        echo "stopped $id"
    fi
    rm -rf "$run"
    if [ "$(cat "$root/current-run" 2>/dev/null || true)" = "$id" ]; then rm -f "$root/current-run"; fi
    echo "removed $id"
    ;;
*)
    echo "fog remote.sh: unknown command $command" >&2
    exit 2
    ;;
esac
