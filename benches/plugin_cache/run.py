#!/usr/bin/env python3
"""Plugin load time with and without the compile cache (issue 17, "fast reloads").

Starts `switchyard serve` with one plugin and `--plugin-cache-dir`, three times per plugin:
cold (empty cache), then twice warm, and reads the `elapsed_ms` the frontend logs for the
load ("plugin compiled (cache: ...)" / "plugin loaded from the compile cache"). Also times
the whole start until /health answers. Usage:

    python3 benches/plugin_cache/run.py [--bin target/release/switchyard] [--repeat 3]
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

PLUGINS = [
    ("scorer", "plugins/target/wasm/latency-aware.wasm", "python"),
    ("picker", "plugins/target/wasm/least-busy.wasm", "js"),
    ("scorer", "plugins/target/wasm/least-loaded.wasm", "rust"),
]
LOAD = re.compile(r"plugin (compiled|loaded from the compile cache)")
ELAPSED = re.compile(r"elapsed_ms=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the log is coloured even when not a terminal


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, kind, path, cache, log):
    port = free_port()
    args = [binary, "serve", "--listen", f"127.0.0.1:{port}",
            "--worker", "m=http://127.0.0.1:9", "--plugin", f"{kind}={path}",
            "--plugin-cache-dir", cache]
    env = {**os.environ, "SWITCHYARD_LOG": "info"}
    began = time.monotonic()
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = began + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError as e:
            if getattr(e, "code", None) is not None:  # any HTTP answer means it serves
                break
            if proc.poll() is not None:
                raise SystemExit(f"frontend exited: see {log.name}")
            time.sleep(0.02)
    ready = time.monotonic() - began
    proc.terminate()
    proc.wait(timeout=30)
    return ready


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/switchyard")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print("| plugin | cold load ms | cached load ms | cold start s | cached start s |")
    print("|---|---|---|---|---|")
    for kind, path, lang in PLUGINS:
        cold, warm, cold_ready, warm_ready = [], [], [], []
        for _ in range(a.repeat):
            cache = tempfile.mkdtemp(prefix="sy-plugin-cache-")
            for run in range(3):
                with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
                    ready = start(a.bin, kind, path, cache + "/c", log)
                    log.seek(0)
                    found = [(int(ELAPSED.search(line).group(1)), LOAD.search(line).group(1))
                             for line in ANSI.sub("", log.read()).splitlines()
                             if LOAD.search(line) and ELAPSED.search(line)]
                if not found:
                    raise SystemExit("no load line in the log")
                ms, what = found[-1]
                if run == 0:
                    assert what == "compiled", what
                    cold.append(ms)
                    cold_ready.append(ready)
                else:
                    assert what != "compiled", what
                    warm.append(ms)
                    warm_ready.append(ready)
            shutil.rmtree(cache, ignore_errors=True)
        med = statistics.median
        print(f"| {lang} `{os.path.basename(path)}` | {med(cold):.0f} | {med(warm):.0f} | "
              f"{med(cold_ready):.2f} | {med(warm_ready):.2f} |")


if __name__ == "__main__":
    main()
