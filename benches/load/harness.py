#!/usr/bin/env python3
"""Switchyard load harness.

Measures requests/s, p50/p99 latency and frontend CPU per request for non-streaming and
16-token streaming chat, and 16-token streamed Anthropic Messages and OpenAI Responses
requests (`messages-16`, `responses-16`: the mocker serves chat only, so the frontend
translates them), at concurrency 1 and 64 — both directly against a mocker (for the agent
APIs: the chat request the frontend sends it) and through the frontend. Within each
concurrency every repeat runs all cases back to back, so the translated cases' CPU can be
compared with `stream-16` (a "vs stream-16" table). The frontend is pinned alone to CPU 0; the mocker and wrk
share CPU 1. CPU per request is (utime + stime) of the frontend process from /proc divided by
the requests wrk completed. Prints a markdown table; medians over --repeat runs.

The frontend logs at warn (BENCH_LOG=info measures the default level, with the access log).

With --peer sglang-router the same cases run through SGLang's router (pip package
`sglang-router`, Rust core) in front of the same mocker, pinned to the same CPU, for a ratio.

With --ab OTHER_BIN a second frontend (OTHER_BIN, e.g. the previous commit's release build)
runs beside the first on the same CPU and mocker, and every repeat measures both back to back:
an interleaved A/B that the machine's day-to-day speed changes cannot bias. Prints a table of
medians and B/A ratios.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"not ready: {url}")


def start(cmd, cpu, ready_url):
    p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL,
                         env={**os.environ, "SWITCHYARD_LOG": os.environ.get("BENCH_LOG", "warn")})
    wait_http(ready_url)
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def parse_latency(text, label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(url, path, body, conns, duration):
    env = {**os.environ, "PATH_": path, "BODY": json.dumps(body)}
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
         "-s", os.path.join(HERE, "post.lua"), url],
        capture_output=True, text=True, env=env, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": reqs,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_us": parse_latency(out, "50"),
        "p99_us": parse_latency(out, "99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def start_peer(name, python, port, worker):
    if name != "sglang-router":
        raise SystemExit(f"unknown peer {name!r} (supported: sglang-router)")
    cmd = [python, "-m", "sglang_router.launch_router", "--host", "127.0.0.1", "--port",
           str(port), "--worker-urls", worker, "--policy", "round_robin", "--log-level", "warn"]
    return start(cmd, 0, f"http://127.0.0.1:{port}/health")


CHAT = "/v1/chat/completions"


def cases(model="mock-model", prompt="hello there", tokens=16):
    """(name, path, body, direct body) per case. The direct body is what the mocker is sent
    without the frontend: for the translated APIs, the chat request they become."""
    chat = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": tokens}
    stream = {**chat, "stream": True}
    messages = {"model": model, "max_tokens": tokens, "stream": True,
                "messages": [{"role": "user", "content": prompt}]}
    responses = {"model": model, "input": prompt, "max_output_tokens": tokens, "stream": True}
    return [
        ("non-stream", CHAT, chat, chat),
        (f"stream-{tokens}", CHAT, stream, stream),
        (f"messages-{tokens}", "/v1/messages", messages, stream),
        (f"responses-{tokens}", "/v1/responses", responses, stream),
    ]


def over_stream(rows, key="cpu_us", base="stream-16"):
    """Each translated case's `key` as a ratio of the chat stream's at the same concurrency."""
    by = {(r["case"], r["c"]): r[key] for r in rows}
    out = []
    for r in rows:
        ref = by.get((base, r["c"]))
        if r["case"].startswith(("messages-", "responses-")) and ref:
            out.append({"case": r["case"], "c": r["c"], "value": r[key], "base": ref,
                        "ratio": r[key] / ref})
    return out


def measure(port, proc, path, body, conns, duration):
    before = cpu_seconds(proc.pid)
    r = wrk(f"http://127.0.0.1:{port}", path, body, conns, duration)
    r["cpu_us_per_req"] = (cpu_seconds(proc.pid) - before) * 1e6 / max(1, r["requests"])
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write raw results here")
    ap.add_argument("--peer", help="also measure a peer router: sglang-router")
    ap.add_argument("--peer-python", default=sys.executable,
                    help="Python with the peer's package installed")
    ap.add_argument("--ab", help="another switchyard binary to measure interleaved with --bin")
    ap.add_argument("--cases", help="comma-separated case names (default: all): "
                    "non-stream, stream-16, messages-16, responses-16")
    args = ap.parse_args()
    selected = [c for c in cases() if not args.cases or c[0] in args.cases.split(",")]
    if not selected:
        raise SystemExit(f"no case matches --cases {args.cases!r}")

    mport, fport, pport = free_port(), free_port(), free_port()
    mocker = start([args.bin, "mocker", "--listen", f"127.0.0.1:{mport}"], 1,
                   f"http://127.0.0.1:{mport}/health")
    frontend = start([args.bin, "serve", "--listen", f"127.0.0.1:{fport}",
                      "--worker", f"mock-model=http://127.0.0.1:{mport}"], 0,
                     f"http://127.0.0.1:{fport}/health")
    peer = (start_peer(args.peer, args.peer_python, pport, f"http://127.0.0.1:{mport}")
            if args.peer else None)
    bport = free_port()
    other = (start([args.ab, "serve", "--listen", f"127.0.0.1:{bport}",
                    "--worker", f"mock-model=http://127.0.0.1:{mport}"], 0,
                   f"http://127.0.0.1:{bport}/health") if args.ab else None)
    rows, peer_rows, ab_rows = [], [], []
    try:
        for conns in (1, 64):
            runs = {name: {"direct": [], "frontend": [], "peer": [], "b": []}
                    for name, *_ in selected}
            for _ in range(args.repeat):
                for name, path, body, direct_body in selected:
                    run = runs[name]
                    if other:
                        run["b"].append(measure(bport, other, path, body, conns, args.duration))
                    run["direct"].append(wrk(f"http://127.0.0.1:{mport}", CHAT, direct_body,
                                             conns, args.duration))
                    run["frontend"].append(measure(fport, frontend, path, body, conns,
                                                   args.duration))
                    # The peer routes chat only.
                    if peer and path == CHAT:
                        run["peer"].append(measure(pport, peer, path, body, conns, args.duration))
            for name, path, *_ in selected:
                run = runs[name]
                med = lambda target, key: statistics.median(x[key] for x in run[target])
                if other:
                    ab_rows.append({
                        "case": name, "c": conns,
                        "a_cpu": med("frontend", "cpu_us_per_req"), "b_cpu": med("b", "cpu_us_per_req"),
                        "a_p50": med("frontend", "p50_us"), "b_p50": med("b", "p50_us"),
                        "a_rps": med("frontend", "rps"), "b_rps": med("b", "rps"),
                    })
                if peer and path == CHAT:
                    peer_rows.append({
                        "case": name, "c": conns, "rps": med("peer", "rps"),
                        "p50": med("peer", "p50_us"), "p99": med("peer", "p99_us"),
                        "cpu_us": med("peer", "cpu_us_per_req"), "fe_cpu_us": med("frontend", "cpu_us_per_req"),
                        "errors": sum(x["errors"] for x in run["peer"]),
                    })
                rows.append({
                    "case": name, "c": conns,
                    "direct_rps": med("direct", "rps"), "direct_p50": med("direct", "p50_us"),
                    "direct_p99": med("direct", "p99_us"),
                    "fe_rps": med("frontend", "rps"), "fe_p50": med("frontend", "p50_us"),
                    "fe_p99": med("frontend", "p99_us"),
                    "cpu_us": med("frontend", "cpu_us_per_req"),
                    "errors": sum(x["errors"] for t in run.values() for x in t),
                })
            print(f"done c={conns}", file=sys.stderr)
    finally:
        for p in (frontend, mocker, peer, other):
            if p:
                p.send_signal(signal.SIGKILL)
                p.wait()

    print("| case | c | direct req/s | direct p50 µs | direct p99 µs | frontend req/s | frontend p50 µs | frontend p99 µs | added p50 µs | frontend CPU µs/req | non-2xx |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['c']} | {r['direct_rps']:.0f} | {r['direct_p50']:.0f} | {r['direct_p99']:.0f} "
              f"| {r['fe_rps']:.0f} | {r['fe_p50']:.0f} | {r['fe_p99']:.0f} | {r['fe_p50'] - r['direct_p50']:.0f} "
              f"| {r['cpu_us']:.1f} | {r['errors']} |")
    if peer_rows:
        print()
        print(f"| case | c | {args.peer} req/s | p50 µs | p99 µs | CPU µs/req | Switchyard CPU µs/req | ratio | non-2xx |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in peer_rows:
            print(f"| {r['case']} | {r['c']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} "
                  f"| {r['cpu_us']:.1f} | {r['fe_cpu_us']:.1f} | {r['cpu_us'] / r['fe_cpu_us']:.1f}× | {r['errors']} |")
    if ab_rows:
        print()
        print(f"A = {args.bin}, B = {args.ab} (interleaved, medians of {args.repeat})")
        print()
        print("| case | c | A CPU µs/req | B CPU µs/req | B/A | A p50 µs | B p50 µs | A req/s | B req/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in ab_rows:
            print(f"| {r['case']} | {r['c']} | {r['a_cpu']:.1f} | {r['b_cpu']:.1f} | {r['b_cpu'] / r['a_cpu']:.3f} "
                  f"| {r['a_p50']:.0f} | {r['b_p50']:.0f} | {r['a_rps']:.0f} | {r['b_rps']:.0f} |")
    translated = over_stream(rows)
    if translated:
        print()
        print("Translated agent-API streams vs the chat stream (frontend CPU µs/req, same run; target ≤ 1.20)")
        print()
        print("| case | c | CPU µs/req | stream-16 CPU µs/req | vs stream-16 |")
        print("|---|---|---|---|---|")
        for r in translated:
            print(f"| {r['case']} | {r['c']} | {r['value']:.1f} | {r['base']:.1f} | {r['ratio']:.3f} |")
    if ab_rows:
        ab_translated = over_stream(ab_rows, key="b_cpu")
        if ab_translated:
            print()
            print("Same for B:")
            print()
            for r in ab_translated:
                print(f"- {r['case']} c={r['c']}: {r['ratio']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"frontend": rows, "peer": peer_rows, "ab": ab_rows,
                       "translated": translated}, f, indent=2)


if __name__ == "__main__":
    main()
