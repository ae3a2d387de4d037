#!/usr/bin/env python3
"""KV-aware routing experiment (issue 4, "Measure and report").

Starts N mockers with a limited KV cache and nonzero prefill/decode timing, a frontend per
routing mode, and replays a multi-turn trace whose conversations share system prompts:

  round-robin   --policy round-robin
  least-loaded  --policy least-loaded
  kv-approx     --policy kv              (approximate index: the frontend's own decisions)
  kv-events     --policy kv --nats URL   (mockers publish KV events; needs nats-server)

Each mode gets fresh mockers (empty caches). Reports TTFT p50/p99 and throughput, writes a JSON
result file and a plot (matplotlib, installed with pip if missing).

Trace: generated (default), or Mooncake JSONL (`--mooncake FILE`: one object per line with
`timestamp`, `input_length`, `output_length`, `hash_ids`; each hash id becomes a deterministic
text block, so equal hash ids give equal prefixes).

Usage:
  python3 benches/kv_routing/experiment.py --bin target/release/switchyard --out benches/kv_routing/out
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

MODEL = "mock-model"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline_s=20.0):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready in {deadline_s}s")


def wait_tcp(port, deadline_s=15.0):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not open")


# ---------------------------------------------------------------- traces

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()


def text(rng, nbytes):
    out = []
    n = 0
    while n < nbytes:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)


def generated_trace(args):
    """Conversations: (system prompt shared by a group) + turns; each turn re-sends history."""
    rng = random.Random(args.seed)
    systems = [f"[system {k}] " + text(rng, args.system_bytes) for k in range(args.prefixes)]
    convs = []
    for c in range(args.conversations):
        sys_prompt = systems[c % args.prefixes]
        msgs = [{"role": "system", "content": sys_prompt}]
        turns = []
        for t in range(args.turns):
            msgs = msgs + [{"role": "user", "content": f"[c{c} t{t}] " + text(rng, args.user_bytes)}]
            turns.append({"kind": "chat", "messages": list(msgs), "max_tokens": args.max_tokens})
            msgs = msgs + [{"role": "assistant", "content": text(rng, args.assistant_bytes)}]
        convs.append(turns)
    rng.shuffle(convs)
    return convs


def mooncake_trace(args):
    """Mooncake JSONL → one single-request 'conversation' per line (order kept)."""
    blocks = {}
    rng = random.Random(args.seed)
    convs = []
    with open(args.mooncake) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            parts = []
            for h in rec.get("hash_ids", []):
                if h not in blocks:
                    blocks[h] = f"<{h}>" + text(rng, args.mooncake_block_bytes)
                parts.append(blocks[h])
            prompt = "".join(parts)
            out = max(1, min(int(rec.get("output_length", args.max_tokens)), args.max_tokens))
            convs.append([{"kind": "completion", "prompt": prompt, "max_tokens": out}])
            if args.limit and len(convs) >= args.limit:
                break
    return convs


# ---------------------------------------------------------------- client

async def one_request(port, turn):
    if turn["kind"] == "chat":
        path = "/v1/chat/completions"
        body = {"model": MODEL, "messages": turn["messages"], "max_tokens": turn["max_tokens"],
                "stream": True}
    else:
        path = "/v1/completions"
        body = {"model": MODEL, "prompt": turn["prompt"], "max_tokens": turn["max_tokens"],
                "stream": True}
    payload = json.dumps(body).encode()
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    instance = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-switchyard-instance:"):
            instance = line.split(b":", 1)[1].strip().decode()
    ttft = None
    buf = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        buf += chunk
        if ttft is None and b'"content"' in buf or (ttft is None and b'"text"' in buf):
            ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    writer.close()
    ok = status == 200 and b"[DONE]" in buf and b'"error"' not in buf
    return {"ok": ok, "status": status, "ttft": ttft if ttft is not None else total,
            "total": total, "instance": instance}


async def run_trace(port, convs, concurrency):
    queue = asyncio.Queue()
    for c in convs:
        queue.put_nowait(c)
    results = []

    async def worker():
        while True:
            try:
                conv = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for turn in conv:
                try:
                    results.append(await one_request(port, turn))
                except Exception as e:  # a failed request is counted, never fatal
                    results.append({"ok": False, "status": 0, "ttft": None, "total": None,
                                    "error": str(e)})

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.perf_counter() - t0


# ---------------------------------------------------------------- processes

class Procs:
    def __init__(self):
        self.procs = []

    def spawn(self, argv, log):
        p = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))
    return v[k]


def run_mode(args, mode, convs, logdir):
    procs = Procs()
    log = open(os.path.join(logdir, f"{mode}.log"), "w")
    try:
        nats_url = None
        if mode == "kv-events":
            nats_port = free_port()
            procs.spawn([args.nats_server, "-a", "127.0.0.1", "-p", str(nats_port)], log)
            wait_tcp(nats_port)
            nats_url = f"nats://127.0.0.1:{nats_port}"
        workers = []
        for i in range(args.mockers):
            port = free_port()
            argv = [args.bin, "mocker", "--listen", f"127.0.0.1:{port}", "--model", MODEL,
                    "--kv-blocks", str(args.kv_blocks), "--block-size", str(args.block_size),
                    "--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms),
                    "--max-running", str(args.max_running)]
            if nats_url:
                argv += ["--nats", nats_url]
            procs.spawn(argv, log)
            workers.append(port)
        for port in workers:
            wait_http(f"http://127.0.0.1:{port}/health")
        fe_port = free_port()
        policy = {"round-robin": "round-robin", "least-loaded": "least-loaded",
                  "kv-approx": "kv", "kv-events": "kv"}[mode]
        argv = [args.bin, "serve", "--listen", f"127.0.0.1:{fe_port}", "--policy", policy]
        for port in workers:
            argv += ["--worker", f"{MODEL}=http://127.0.0.1:{port}"]
        if nats_url:
            argv += ["--nats", nats_url]
        procs.spawn(argv, log)
        wait_http(f"http://127.0.0.1:{fe_port}/health")
        if nats_url:
            time.sleep(1.5)  # load snapshots and the initial dumps reach the index
        results, elapsed = asyncio.run(run_trace(fe_port, convs, args.concurrency))
    finally:
        procs.stop()
        log.close()
    ok = [r for r in results if r["ok"]]
    ttfts = [r["ttft"] * 1000 for r in ok]
    spread = {}
    for r in ok:
        spread[r.get("instance")] = spread.get(r.get("instance"), 0) + 1
    return {
        "mode": mode,
        "requests": len(results),
        "ok": len(ok),
        "ttft_p50_ms": pct(ttfts, 50),
        "ttft_p99_ms": pct(ttfts, 99),
        "ttft_mean_ms": statistics.fmean(ttfts) if ttfts else float("nan"),
        "throughput_rps": len(ok) / elapsed if elapsed > 0 else 0.0,
        "elapsed_s": elapsed,
        "per_instance": spread,
        "ttfts_ms": ttfts,
    }


def plot(results, path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"],
                       check=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [r["mode"] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    x = range(len(modes))
    axes[0].bar([i - 0.2 for i in x], [r["ttft_p50_ms"] for r in results], 0.4, label="p50")
    axes[0].bar([i + 0.2 for i in x], [r["ttft_p99_ms"] for r in results], 0.4, label="p99")
    axes[0].set_xticks(list(x), modes, rotation=15)
    axes[0].set_ylabel("TTFT (ms)")
    axes[0].set_title("Time to first token")
    axes[0].legend()
    axes[1].bar(list(x), [r["throughput_rps"] for r in results], color="tab:green")
    axes[1].set_xticks(list(x), modes, rotation=15)
    axes[1].set_ylabel("requests / s")
    axes[1].set_title("Throughput")
    for r in results:
        v = sorted(r["ttfts_ms"])
        if v:
            axes[2].plot(v, [i / len(v) for i in range(len(v))], label=r["mode"])
    axes[2].set_xscale("log")
    axes[2].set_xlabel("TTFT (ms)")
    axes[2].set_ylabel("CDF")
    axes[2].set_title("TTFT distribution")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN", "target/release/switchyard"))
    ap.add_argument("--nats-server", default=shutil.which("nats-server") or "/usr/sbin/nats-server")
    ap.add_argument("--out", default="benches/kv_routing/out")
    ap.add_argument("--modes", default="round-robin,least-loaded,kv-approx,kv-events")
    ap.add_argument("--mockers", type=int, default=4)
    ap.add_argument("--kv-blocks", type=int, default=256)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--ttft-ms", type=float, default=2.0, help="prefill ms per uncached block")
    ap.add_argument("--itl-ms", type=float, default=5.0)
    ap.add_argument("--max-running", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--prefixes", type=int, default=8, help="distinct shared system prompts")
    ap.add_argument("--system-bytes", type=int, default=3000)
    ap.add_argument("--user-bytes", type=int, default=200)
    ap.add_argument("--assistant-bytes", type=int, default=200)
    ap.add_argument("--conversations", type=int, default=64)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mooncake", help="Mooncake trace JSONL instead of the generated trace")
    ap.add_argument("--mooncake-block-bytes", type=int, default=256)
    ap.add_argument("--limit", type=int, default=0, help="max Mooncake records (0 = all)")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    convs = mooncake_trace(args) if args.mooncake else generated_trace(args)
    print(f"trace: {len(convs)} conversations, {sum(len(c) for c in convs)} requests", flush=True)
    results = []
    for mode in args.modes.split(","):
        r = run_mode(args, mode, convs, args.out)
        results.append(r)
        print(f"{mode:13s} ok {r['ok']}/{r['requests']}  TTFT p50 {r['ttft_p50_ms']:8.1f} ms  "
              f"p99 {r['ttft_p99_ms']:8.1f} ms  throughput {r['throughput_rps']:7.1f} req/s  "
              f"spread {sorted(r['per_instance'].values())}", flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    base = next((r for r in results if r["mode"] == "round-robin"), None)
    for r in results:
        if base and r is not base and r["ttft_p50_ms"] > 0:
            print(f"{r['mode']}: TTFT p50 {base['ttft_p50_ms'] / r['ttft_p50_ms']:.2f}x vs round-robin")
    try:
        plot(results, os.path.join(args.out, "kv_routing.png"))
        print(f"plot: {os.path.join(args.out, 'kv_routing.png')}")
    except Exception as e:  # the numbers stand without the plot
        print(f"plot failed: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
