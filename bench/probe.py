"""Run a command and report its cold start and peak memory as one JSON line.

Cold start = time from spawning the command to its first line of output (its first classified
frame). Peak RSS comes from ``wait4``. This runs as a separate small process on purpose: a child
forked straight from the benchmark (which has TensorFlow loaded) would inherit the parent's
resident pages before ``exec`` and report the parent's size as its own peak.
"""

import json
import os
import subprocess
import sys
import time


def main() -> int:
    command = sys.argv[1:]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = child.stdout.readline()
    cold = time.perf_counter() - started
    child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    print(json.dumps({"cold_start_s": cold, "peak_rss_mb": usage.ru_maxrss / 1024,
                      "ok": bool(first) and status == 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
