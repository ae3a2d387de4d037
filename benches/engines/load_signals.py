#!/usr/bin/env python3
"""Load signals without NATS: does reading the engines' own metrics help routing?

Four mockers speak vLLM's metric dialect (`--engine vllm --max-running 4`). Another client
keeps a standing queue on worker 0 (streams sent straight to it, re-issued as they end), as other tenants or a
second router would. The frontend routes with `least-loaded`; its own clients send chat
streams at a fixed concurrency and we record time to first token through the frontend.

Two configurations run interleaved, `--repeat` times each:
  scrape   load_scrape.interval_ms = 250 (the default): the frontend sees worker 0's queue
  blind    load_scrape.interval_ms = 0: only its own in-flight counts

Also reports the scraper's cost: frontend CPU seconds per second with 4 (idle) workers scraped
at the default interval, against the same frontend with scraping off.

Usage: benches/engines/load_signals.py --bin target/release/switchyard [--repeat 3]
"""
import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import free_port, wait_http, cpu_seconds, start, pct  # noqa: E402


def frontend(binary, workers, interval_ms, tmp):
    port = free_port()
    lines = ["routing:\n  policy: least-loaded\n",
             f"load_scrape:\n  interval_ms: {interval_ms}\n",
             "workers:\n"]
    for i, url in enumerate(workers):
        lines.append(f"  - {{model: mock-model, url: \"{url}\", id: w{i}, engine: vllm}}\n")
    path = os.path.join(tmp, f"fe-{interval_ms}.yaml")
    with open(path, "w") as f:
        f.write("".join(lines))
    p = start([binary, "serve", "--listen", f"127.0.0.1:{port}", "--config", path],
              f"http://127.0.0.1:{port}/health")
    return p, f"http://127.0.0.1:{port}"


BODY = {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 16, "stream": True}


async def one(client, base, out):
    t0 = time.perf_counter()
    async with client.stream("POST", f"{base}/v1/chat/completions", json=BODY) as r:
        if r.status_code != 200:
            out["errors"] += 1
            return
        first = True
        async for line in r.aiter_lines():
            if first and line.startswith("data: ") and '"content"' in line:
                out["ttft"].append((time.perf_counter() - t0) * 1000)
                first = False


async def drive(base, concurrency, seconds):
    out = {"ttft": [], "errors": 0}
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < deadline:
                await one(client, base, out)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


async def standing_queue(url, n, stop):
    """Keeps n streams of 200 tokens running straight to one worker until `stop` is set:
    with `--max-running 4` that is a queue of n - 4 which drains and refills."""
    async with httpx.AsyncClient(timeout=None) as client:
        body = {**BODY, "max_tokens": 200}

        async def loop():
            while not stop.is_set():
                async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                    async for _ in r.aiter_bytes():
                        pass

        await asyncio.gather(*(loop() for _ in range(n)))


async def main_async(args):
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        workers = []
        for _ in range(4):
            port = free_port()
            procs.append(start([args.bin, "mocker", "--listen", f"127.0.0.1:{port}",
                                "--engine", "vllm", "--max-running", "4",
                                "--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms)],
                               f"http://127.0.0.1:{port}/health"))
            workers.append(f"http://127.0.0.1:{port}")
        stop = asyncio.Event()
        other = asyncio.create_task(standing_queue(workers[0], args.other_streams, stop))
        fes = {}
        for name, interval in (("scrape", 250), ("blind", 0)):
            p, base = frontend(args.bin, workers, interval, tmp)
            procs.append(p)
            fes[name] = (p, base)
        await asyncio.sleep(1.0)  # let the first scrapes land before measuring
        results = {"scrape": [], "blind": []}
        for _ in range(args.repeat):
            for name in ("scrape", "blind"):
                r = await drive(fes[name][1], args.concurrency, args.seconds)
                results[name].append(r)
        stop.set()
        await other

        # Scrape cost: CPU of an otherwise idle frontend, scraping 4 workers vs not.
        cost = {}
        for name in ("scrape", "blind"):
            p = fes[name][0]
            c0, t0 = cpu_seconds(p.pid), time.time()
            await asyncio.sleep(args.cost_seconds)
            cost[name] = (cpu_seconds(p.pid) - c0) / (time.time() - t0)

        print(f"4 mockers (--engine vllm --max-running 4 --ttft-ms {args.ttft_ms} --itl-ms {args.itl_ms}), "
              f"{args.other_streams} foreign streams on w0, {args.concurrency} concurrent 16-token streams "
              f"through least-loaded, {args.seconds}s x {args.repeat} interleaved runs (medians)")
        print()
        print("| load_scrape | requests | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | errors |")
        print("|---|---|---|---|---|---|")
        for name in ("scrape", "blind"):
            runs = results[name]
            med = lambda f: statistics.median(f(r) for r in runs)
            print(f"| {name} | {med(lambda r: len(r['ttft'])):.0f} | {med(lambda r: pct(r['ttft'], .5)):.1f} "
                  f"| {med(lambda r: pct(r['ttft'], .9)):.1f} | {med(lambda r: pct(r['ttft'], .99)):.1f} "
                  f"| {sum(r['errors'] for r in runs)} |")
        print()
        per_worker = (cost["scrape"] - cost["blind"]) / 4
        print(f"idle frontend CPU: scraping {cost['scrape'] * 1000:.2f} ms/s, off {cost['blind'] * 1000:.2f} ms/s "
              f"-> {per_worker * 1000:.3f} ms of CPU per second per scraped worker at 250 ms")
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--other-streams", type=int, default=12)
    ap.add_argument("--ttft-ms", type=float, default=20)
    ap.add_argument("--itl-ms", type=float, default=5)
    ap.add_argument("--cost-seconds", type=float, default=10)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
