#!/usr/bin/env python3
"""Disaggregated vs aggregated serving on a long-prompt, mixed trace.

Mockers with `--prefill-interference` model one GPU each: prefills take it one at a time and
hold up every running sequence's next token, as engines without chunked prefill do. Two
pools of the same total size serve the same trace through one frontend:

  agg   4 mockers (`role: both`), policy `kv`
  pd    2 `--role prefill` + 2 `--role decode` mockers, vLLM protocol
        (`disaggregation.min_uncached_tokens` decides per request)

The trace: Poisson arrivals at `--rate` requests/s, prompts uniform in
[`--min-prompt`, `--max-prompt`] tokens (4 bytes per token, no tokenizer), outputs uniform in
[16, 256] tokens, all streamed. A `--short` trace (prompts 16-64 tokens) checks that
conditional disaggregation costs nothing when prompts are short.

Reported per pool: TTFT p50/p99, ITL p50/p99 (gaps between content chunks), output tokens/s
(wall clock, first send to last byte), errors.

Usage: benches/pd/mixed_trace.py --bin target/release/switchyard [--requests 200] [--rate 4]
       [--short] [--repeat 1]
Timing knobs are mocker flags: --ttft-ms (per 16-token block), --itl-ms, --transfer-ms.
"""
import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import free_port, wait_http, start, pct  # noqa: E402

MODEL = "mock-model"
WORDS = "river bend stone water flow delta bank silt reed current".split()


def mocker(binary, args, role):
    port = free_port()
    cmd = [binary, "mocker", "--listen", f"127.0.0.1:{port}", "--model", MODEL,
           "--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms),
           "--max-running", "32", "--block-size", "16", "--prefill-interference",
           "--kv-transfer-ms-per-block", str(args.transfer_ms), "--role", role]
    return start(cmd, f"http://127.0.0.1:{port}/health"), f"http://127.0.0.1:{port}"


def frontend(binary, workers, tmp, name, min_uncached):
    port = free_port()
    lines = ["routing:\n  policy: kv\nkv:\n  block_size: 16\n",
             f"disaggregation:\n  pd_protocol: vllm\n  min_uncached_tokens: {min_uncached}\n",
             "upstream:\n  first_byte_timeout_ms: 600000\n",
             "workers:\n"]
    for i, (url, role) in enumerate(workers):
        lines.append(f"  - {{model: {MODEL}, url: \"{url}\", id: w{i}, role: {role}}}\n")
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("".join(lines))
    p = start([binary, "serve", "--listen", f"127.0.0.1:{port}", "--config", path],
              f"http://127.0.0.1:{port}/health")
    return p, f"http://127.0.0.1:{port}"


def trace(args, seed):
    rng = random.Random(seed)
    lo, hi = (16, 64) if args.short else (args.min_prompt, args.max_prompt)
    t = 0.0
    out = []
    for i in range(args.requests):
        t += rng.expovariate(args.rate)
        tokens = rng.randint(lo, hi)
        # Distinct prompts (no shared prefix): every prefill is real work.
        words = [f"r{i}"] + [rng.choice(WORDS) for _ in range(tokens)]
        prompt = " ".join(words)[: tokens * 4]
        out.append((t, prompt, rng.randint(16, 256)))
    return out


async def one(client, url, at, prompt, max_tokens, start, results):
    await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "stream": True}
    sent = time.perf_counter()
    first, last, gaps, tokens = None, None, [], 0
    try:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                results["errors"] += 1
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                choices = chunk.get("choices") or []
                if not choices or not choices[0].get("delta", {}).get("content"):
                    continue
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gaps.append(now - last)
                last = now
                tokens += 1
    except httpx.HTTPError:
        results["errors"] += 1
        return
    if first is not None:
        results["ttft"].append(first - sent)
        results["itl"].extend(gaps)
        results["tokens"] += tokens
        results["end"] = max(results["end"], last)


async def run_trace(url, items):
    results = {"ttft": [], "itl": [], "tokens": 0, "errors": 0, "end": 0.0}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client, url, at, p, m, start, results) for at, p, m in items))
    results["wall"] = results["end"] - start if results["end"] else float("nan")
    return results


def report(name, r):
    ms = lambda v: f"{v * 1000:8.1f}"
    return (f"{name:5} TTFT p50 {ms(pct(r['ttft'], .5))} p99 {ms(pct(r['ttft'], .99))} ms | "
            f"ITL p50 {ms(pct(r['itl'], .5))} p99 {ms(pct(r['itl'], .99))} ms | "
            f"{r['tokens'] / r['wall']:7.1f} tok/s | errors {r['errors']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/switchyard")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rate", type=float, default=4.0)
    ap.add_argument("--min-prompt", type=int, default=2048)
    ap.add_argument("--max-prompt", type=int, default=16384)
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--ttft-ms", type=float, default=0.5, help="per 16-token block")
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--transfer-ms", type=float, default=0.02, help="per block")
    ap.add_argument("--min-uncached", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    pools = {
        "agg": ["both"] * 4,
        "pd": ["prefill", "prefill", "decode", "decode"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            items = trace(args, seed=rep)
            for name, roles in pools.items():
                procs = []
                try:
                    workers = []
                    for role in roles:
                        p, url = mocker(args.bin, args, role)
                        procs.append(p)
                        workers.append((url, role))
                    fe, url = frontend(args.bin, workers, tmp, name, args.min_uncached)
                    procs.append(fe)
                    print(report(name, asyncio.run(run_trace(url, items))), flush=True)
                    if name == "pd":
                        text = httpx.get(f"{url}/metrics").text
                        print("      " + "; ".join(
                            l.replace("switchyard_pd_", "") for l in text.splitlines()
                            if l.startswith(("switchyard_pd_decisions", "switchyard_pd_fallbacks"))))
                finally:
                    for p in procs:
                        p.terminate()
                    for p in procs:
                        p.wait()


if __name__ == "__main__":
    main()
