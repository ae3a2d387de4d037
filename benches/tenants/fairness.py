#!/usr/bin/env python3
"""Tenants and flow control under contention (#12), and the cost of tenant checks.

Fairness: four mockers (`--max-running 4`). Tenant B sends 16-token chat streams at c=2 and
we record its time to first token (TTFT) through the frontend:
  alone       B only (flow control on)
  flow        tenant A floods at c=64 while B sends; flow control on
              (`overload.max_in_flight_per_instance: 4`, `flow_control.enabled`)
  no-flow     the same flood with flow control off and no thresholds: everything is sent
              to the engines, which queue it
A's throughput during the flood is compared with the pool's saturated throughput (A alone
at c=64 through the flow-controlled frontend).

Cost: frontend CPU per non-streamed request, c=8, with 1000 configured tenants (the caller
is one of them, every limit set high enough never to refuse) vs no tenants, and with TLS on
the listener (no tenants; a self-signed P-256 certificate made by openssl at start; keep-alive
connections, so the handshake is amortised) vs the same without TLS. Cases are interleaved.

Usage: benches/tenants/fairness.py --bin target/release/switchyard [--seconds 10] [--repeat 3]
Run on a quiet machine with a release build; figures go in docs/benchmarks.md.
"""
import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import free_port, wait_http, cpu_seconds, start, pct  # noqa: E402

KEY_A, KEY_B = "sk-bench-tenant-a", "sk-bench-tenant-b"


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def tenant_lines(extra=0):
    lines = ["tenants:\n"]
    for tid, key in (("a", KEY_A), ("b", KEY_B)):
        lines.append(f"  - {{id: {tid}, key_sha256: {sha(key)}}}\n")
    for i in range(extra):
        lines.append(f"  - {{id: t{i}, key_sha256: {sha(f'sk-filler-{i}')}, "
                     "limits: {requests_per_second: 1000000, tokens_per_minute: 1000000000}}\n")
    return lines


def self_signed(tmp):
    """A throw-away certificate for 127.0.0.1 (the client does not verify it)."""
    cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def frontend(binary, workers, tmp, name, flow, tenants=True, extra_tenants=0, tls=None):
    port = free_port()
    lines = ["workers:\n"]
    if tls:
        lines = [f"tls:\n  cert_file: {tls[0]}\n  key_file: {tls[1]}\n"] + lines
    lines += [f"  - {{model: mock-model, url: \"{url}\", id: w{i}}}\n" for i, url in enumerate(workers)]
    if flow:
        lines.append("overload:\n  max_in_flight_per_instance: 4\n")
        lines.append("flow_control:\n  enabled: true\n  max_wait_ms: 60000\n  max_queue_per_band: 100000\n")
    if tenants:
        lines += tenant_lines(extra_tenants)
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("".join(lines))
    scheme = "https" if tls else "http"
    p = start([binary, "serve", "--listen", f"127.0.0.1:{port}", "--config", path],
              f"{scheme}://127.0.0.1:{port}/health")
    return p, f"{scheme}://127.0.0.1:{port}"


BODY = {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 16, "stream": True}


async def stream_one(client, base, key, out):
    t0 = time.perf_counter()
    headers = {"authorization": f"Bearer {key}"}
    async with client.stream("POST", f"{base}/v1/chat/completions", json=BODY, headers=headers) as r:
        if r.status_code != 200:
            out["errors"] += 1
            await r.aread()
            return
        first = True
        async for line in r.aiter_lines():
            if first and line.startswith("data: ") and '"content"' in line:
                out["ttft"].append((time.perf_counter() - t0) * 1000)
                first = False
    out["done"] += 1


async def drive(base, key, concurrency, seconds, out=None):
    out = out or {"ttft": [], "errors": 0, "done": 0}
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < deadline:
                await stream_one(client, base, key, out)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


async def contention(base, seconds, with_flood):
    b = {"ttft": [], "errors": 0, "done": 0}
    a = {"ttft": [], "errors": 0, "done": 0}
    tasks = [drive(base, KEY_B, 2, seconds, b)]
    if with_flood:
        tasks.append(drive(base, KEY_A, 64, seconds, a))
    await asyncio.gather(*tasks)
    return a, b


async def cpu_per_request(p, base, key, seconds, concurrency=8):
    body = {**BODY, "stream": False}
    headers = {"authorization": f"Bearer {key}"} if key else {}
    n = 0
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency * 2),
                                 verify=False) as client:
        c0 = cpu_seconds(p.pid)
        deadline = time.perf_counter() + seconds

        async def worker():
            nonlocal n
            while time.perf_counter() < deadline:
                r = await client.post(f"{base}/v1/chat/completions", json=body, headers=headers)
                if r.status_code == 200:
                    n += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (cpu_seconds(p.pid) - c0) / max(n, 1) * 1e6


async def main_async(args):
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        workers = []
        for _ in range(4):
            port = free_port()
            procs.append(start([args.bin, "mocker", "--listen", f"127.0.0.1:{port}", "--max-running", "4",
                                "--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms)],
                               f"http://127.0.0.1:{port}/health"))
            workers.append(f"http://127.0.0.1:{port}")
        flow_p, flow = frontend(args.bin, workers, tmp, "flow", flow=True)
        plain_p, plain = frontend(args.bin, workers, tmp, "no-flow", flow=False)
        procs += [flow_p, plain_p]
        runs = {"alone": [], "flow": [], "no-flow": [], "saturated": []}
        for _ in range(args.repeat):
            runs["alone"].append((await contention(flow, args.seconds, False))[1])
            a, b = await contention(flow, args.seconds, True)
            runs["flow"].append((a, b))
            a, b = await contention(plain, args.seconds, True)
            runs["no-flow"].append((a, b))
            runs["saturated"].append(await drive(flow, KEY_A, 64, args.seconds))

        def med(xs):
            return statistics.median(xs)

        print(f"4 mockers (--max-running 4 --ttft-ms {args.ttft_ms} --itl-ms {args.itl_ms}), 16-token streams, "
              f"{args.seconds}s x {args.repeat} interleaved runs (medians)\n")
        print("| case | B TTFT p50 ms | B TTFT p99 ms | B req | A req/s | B errors | A errors |")
        print("|---|---|---|---|---|---|---|")
        alone = runs["alone"]
        print(f"| B alone | {med([pct(r['ttft'], .5) for r in alone]):.1f} | {med([pct(r['ttft'], .99) for r in alone]):.1f} "
              f"| {med([r['done'] for r in alone]):.0f} | — | {sum(r['errors'] for r in alone)} | — |")
        for name in ("flow", "no-flow"):
            rs = runs[name]
            print(f"| A floods c=64, {name} | {med([pct(b['ttft'], .5) for _, b in rs]):.1f} "
                  f"| {med([pct(b['ttft'], .99) for _, b in rs]):.1f} | {med([b['done'] for _, b in rs]):.0f} "
                  f"| {med([a['done'] / args.seconds for a, _ in rs]):.1f} | {sum(b['errors'] for _, b in rs)} "
                  f"| {sum(a['errors'] for a, _ in rs)} |")
        sat = med([r["done"] / args.seconds for r in runs["saturated"]])
        print(f"\npool saturated (A alone, c=64, flow control): {sat:.1f} req/s")

        for p in (flow_p, plain_p):
            p.kill()
            p.wait()
        many_p, many = frontend(args.bin, workers, tmp, "1000-tenants", flow=False, extra_tenants=1000)
        none_p, none = frontend(args.bin, workers, tmp, "no-tenants", flow=False, tenants=False)
        tls_p, tls = frontend(args.bin, workers, tmp, "tls", flow=False, tenants=False, tls=self_signed(tmp))
        procs += [many_p, none_p, tls_p]
        costs = {"1000 tenants": [], "no tenants": [], "no tenants, TLS listener": []}
        for _ in range(args.repeat):
            costs["1000 tenants"].append(await cpu_per_request(many_p, many, KEY_B, args.seconds))
            costs["no tenants"].append(await cpu_per_request(none_p, none, None, args.seconds))
            costs["no tenants, TLS listener"].append(await cpu_per_request(tls_p, tls, None, args.seconds))
        print("\n| case | frontend CPU µs per non-streamed request (c=8, median) | runs |")
        print("|---|---|---|")
        for name, xs in costs.items():
            print(f"| {name} | {med(xs):.1f} | {', '.join(f'{x:.1f}' for x in xs)} |")
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--ttft-ms", type=float, default=20)
    ap.add_argument("--itl-ms", type=float, default=5)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
