#!/usr/bin/env python3
"""Peak frontend RSS under N concurrent large request bodies (issue #11: memory is bounded
before it is spent).

Starts a mocker and a frontend (the binary under test), records the frontend's VmRSS, sends
N concurrent POST /v1/chat/completions whose bodies are `{"model":..,"messages":[..],
"x":[0,0,…]}` padded to SIZE MiB (just under `limits.max_body_bytes`), and reports the
frontend's VmHWM (peak RSS, from /proc/PID/status) and the statuses it answered.

Usage: benches/memory/bodies.py --bin target/release/switchyard [--n 16] [--mib 16]
       [--port 22100] [--config FILE]
Compare: run once with /work/team/bin/switchyard-main (or any older build), once with the
current release build.
"""

import argparse
import collections
import http.client
import json
import subprocess
import sys
import threading
import time

MODEL = "bench-model"


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_http(port, path, deadline_s=60):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"port {port} did not answer {path}")


def body_of(size):
    head = '{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"x":[' % MODEL
    tail = "]}"
    n = (size - len(head) - len(tail) + 1) // 2
    return (head + ",".join(["0"] * n) + tail).encode()


def post(port, body, out, lock):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        r = c.getresponse()
        data = r.read()
        code = ""
        if r.status != 200:
            try:
                code = json.loads(data)["error"].get("code") or ""
            except (ValueError, KeyError, TypeError):
                code = "?"
        key = f"{r.status} {code}".strip()
    except OSError as e:
        key = f"error {type(e).__name__}"
    with lock:
        out[key] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--port", type=int, default=22100)
    ap.add_argument("--config", help="YAML config passed to the frontend")
    a = ap.parse_args()
    mport, fport = a.port, a.port + 1
    size = a.mib * 1024 * 1024 - 1024  # under the default 16 MiB max_body_bytes
    procs = []
    try:
        procs.append(subprocess.Popen(
            [a.bin, "mocker", "--listen", f"127.0.0.1:{mport}", "--model", MODEL],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(mport, "/health")
        args = [a.bin, "serve", "--listen", f"127.0.0.1:{fport}",
                "--worker", f"{MODEL}=http://127.0.0.1:{mport}"]
        if a.config:
            args += ["--config", a.config]
        fe = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(fe)
        wait_http(fport, "/health")
        body = body_of(size)
        rss_before = status_kib(fe.pid, "VmRSS")
        out, lock = collections.Counter(), threading.Lock()
        threads = [threading.Thread(target=post, args=(fport, body, out, lock)) for _ in range(a.n)]
        start = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - start
        peak = status_kib(fe.pid, "VmHWM")
        print(json.dumps({
            "bin": a.bin, "n": a.n, "body_bytes": len(body),
            "rss_before_mib": round(rss_before / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1),
            "elapsed_s": round(elapsed, 2),
            "answers": dict(out),
        }))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
