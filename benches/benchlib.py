"""Process and statistics helpers shared by the Python benches (`benches/*/*.py`).

Each bench starts mockers and frontends, waits for them over HTTP, reads their CPU time from
/proc and reports percentiles; these are the one copy of that. A bench imports it with

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from benchlib import free_port, wait_http, cpu_seconds, start, pct
"""

import os
import socket
import subprocess
import time

import httpx

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60, ready=lambda status: status == 200):
    """Polls `url` until `ready(status)`; exits the bench if it never is."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            # verify=False: a local readiness poll, also of listeners with a test certificate.
            if ready(httpx.get(url, timeout=1, verify=False).status_code):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"not ready: {url}")


def cpu_seconds(pid):
    """User + system CPU seconds of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(cmd, ready):
    """Starts `cmd` (quiet, log level warn) and waits until `ready` answers 200."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "SWITCHYARD_LOG": "warn"})
    wait_http(ready)
    return p


def pct(xs, q):
    """The q-quantile (0–1) of `xs` by rank; NaN for no samples."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]
