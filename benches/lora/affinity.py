#!/usr/bin/env python3
"""LoRA adapter affinity: residency-aware routing against round-robin.

Four mockers serve one base model with 16 adapters registered on each (`--lora-modules`) and
2 GPU slots (`--max-loras 2`); a request for an adapter not in a slot waits
`--lora-load-ms` for the swap. A trace of requests over the 16 adapters with Zipf popularity
(s = 1.1, seeded) is sent at a fixed concurrency:

  affinity     through the frontend (`adapters:` configured): residency against load
  round-robin  straight to the mockers in turn, as a round-robin router would send them

Reported: request latency p50/p99 (non-streamed, 4 tokens, no other delay: the latency is
the swap) and adapter swaps, summed over the mockers' `switchyard_mocker_lora_swaps_total`.

Usage: benches/lora/affinity.py --bin target/debug/switchyard [--requests 400]
"""
import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import free_port, wait_http  # noqa: E402

ADAPTERS = [f"a{i}" for i in range(16)]
MODEL = "base"


def start_mockers(binary, load_ms):
    procs, urls = [], []
    for _ in range(4):
        port = free_port()
        args = [binary, "mocker", "--listen", f"127.0.0.1:{port}", "--model", MODEL,
                "--engine", "vllm", "--max-loras", "2", "--lora-load-ms", str(load_ms)]
        for a in ADAPTERS:
            args += ["--lora-modules", f"{a}=/"]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
    for u in urls:
        wait_http(f"{u}/health", ready=lambda status: status < 500)
    return procs, urls


def start_frontend(binary, urls, workdir):
    port = free_port()
    lines = ["load_scrape:", "  interval_ms: 250", "adapters:"]
    lines += [f"  - {{name: {a}, base_model: {MODEL}, source: /}}" for a in ADAPTERS]
    lines.append("workers:")
    lines += [f"  - {{model: {MODEL}, url: \"{u}\", id: w{i}, engine: vllm}}" for i, u in enumerate(urls)]
    path = os.path.join(workdir, "fe.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}",
                             "--admin-listen", f"127.0.0.1:{free_port()}", "--config", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", ready=lambda status: status < 500)
    return proc, url


def trace(n, seed):
    rng = random.Random(seed)
    weights = [1 / (k + 1) ** 1.1 for k in range(len(ADAPTERS))]
    return rng.choices(ADAPTERS, weights=weights, k=n)


async def run(targets, adapters, concurrency):
    latencies = []
    queue = list(enumerate(adapters))
    async with httpx.AsyncClient(timeout=60) as client:
        async def worker():
            while queue:
                i, adapter = queue.pop(0)
                url = targets(i)
                body = {"model": adapter, "messages": [{"role": "user", "content": f"q{i}"}],
                        "max_tokens": 4}
                t0 = time.perf_counter()
                r = await client.post(f"{url}/v1/chat/completions", json=body)
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def swaps(urls):
    total = 0.0
    for u in urls:
        for line in httpx.get(f"{u}/metrics").text.splitlines():
            if line.startswith("switchyard_mocker_lora_swaps_total"):
                total += float(line.split()[-1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/switchyard")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--load-ms", type=int, default=200)
    args = ap.parse_args()
    adapters = trace(args.requests, seed=7)
    for mode in ["affinity", "round-robin"]:
        procs, urls = start_mockers(args.bin, args.load_ms)
        with tempfile.TemporaryDirectory() as d:
            fe = None
            try:
                if mode == "affinity":
                    fe, fe_url = start_frontend(args.bin, urls, d)
                    targets = lambda i: fe_url
                else:
                    targets = lambda i: urls[i % len(urls)]
                t0 = time.perf_counter()
                lat = asyncio.run(run(targets, adapters, args.concurrency))
                wall = time.perf_counter() - t0
                lat.sort()
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                print(f"{mode:12} p50 {statistics.median(lat) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
                      f"swaps {swaps(urls):5.0f}  ({args.requests} requests in {wall:.1f} s)")
            finally:
                for p in procs + ([fe] if fe else []):
                    p.terminate()
                    p.wait()


if __name__ == "__main__":
    main()
