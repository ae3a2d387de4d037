#!/usr/bin/env python3
"""Frontend CPU per request with a Wasm picker vs the native policy, and idle RSS with plugins.

Starts one zero-delay mocker (CPU 1) and two frontends on CPU 0 in front of it: one with the
native `round-robin` policy, one with the Wasm round-robin picker. wrk (CPU 1) drives them in
alternation — the same noise hits both — and the script reports the median CPU µs per request
of each and their ratio, for non-streamed requests at c=64. Then it reads VmRSS of an idle
frontend with no plugin and with three (two scorers and a picker) after a few requests.

With --candidates N every frontend sees N instances (N worker entries with distinct ids, all
pointing at the one mocker), so each decision ranks N candidates.

Usage: benches/load/plugin_overhead.py --bin target/release/switchyard [--wasm-dir DIR]
       [--candidates N]
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_seconds, free_port, start, wrk  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def warm(port, n=20):
    body = b'{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'
    for _ in range(n):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--wasm-dir", default="plugins/target/wasm")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=1,
                    help="instances per decision (worker entries over the one mocker)")
    args = ap.parse_args()
    wasm = lambda name: os.path.join(args.wasm_dir, f"{name}.wasm")

    mport = free_port()
    procs = [start([args.bin, "mocker", "--listen", f"127.0.0.1:{mport}"], 1,
                   f"http://127.0.0.1:{mport}/health")]
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write("workers:\n" + "".join(
        f"  - {{ id: w{i}, model: mock-model, url: \"http://127.0.0.1:{mport}\" }}\n"
        for i in range(args.candidates)))
    config.close()
    worker = ["--config", config.name]
    variants = {
        "native round-robin": ["--policy", "round-robin"],
        "wasm round-robin picker": ["--plugin", f"picker={wasm('round-robin')}"],
        "3 plugins (2 scorers + picker)": [
            "--plugin", f"scorer={wasm('least-loaded')}",
            "--plugin", f"scorer={wasm('prefix-affinity')}",
            "--plugin", f"picker={wasm('round-robin')}"],
    }
    frontends = {}
    try:
        for name, extra in variants.items():
            port = free_port()
            p = start([args.bin, "serve", "--listen", f"127.0.0.1:{port}"] + worker + extra, 0,
                      f"http://127.0.0.1:{port}/health")
            procs.append(p)
            frontends[name] = (p, port)
        for name, (p, port) in frontends.items():
            warm(port)
        rss = {name: rss_kib(p.pid) for name, (p, _) in frontends.items()}

        body = {"model": "mock-model", "messages": [{"role": "user", "content": "hello there"}],
                "max_tokens": 16}
        cpu = {name: [] for name in frontends}
        rps = {name: [] for name in frontends}
        errors = 0
        for _ in range(args.repeat):
            for name, (p, port) in frontends.items():
                before = cpu_seconds(p.pid)
                r = wrk(f"http://127.0.0.1:{port}", "/v1/chat/completions", body, 64,
                        args.duration)
                cpu[name].append((cpu_seconds(p.pid) - before) * 1e6 / max(1, r["requests"]))
                rps[name].append(r["rps"])
                errors += r["errors"]
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        os.unlink(config.name)

    base = statistics.median(cpu["native round-robin"])
    print(f"{args.candidates} candidate(s) per decision; non-streamed requests, c=64, medians of {args.repeat}")
    print("| frontend | CPU µs/req | vs native | req/s | idle RSS after warm-up |")
    print("|---|---|---|---|---|")
    for name in frontends:
        med = statistics.median(cpu[name])
        print(f"| {name} | {med:.1f} | {100 * (med / base - 1):+.1f} % "
              f"| {statistics.median(rps[name]):.0f} | {rss[name] / 1024:.1f} MiB |")
    print(f"\nnon-2xx responses: {errors}")


if __name__ == "__main__":
    main()
