#!/usr/bin/env python3
"""KV-aware routing experiment (issue 4, "Measure and report").

Starts N mockers with a limited KV cache and nonzero prefill/decode timing, a frontend per
routing mode, and replays a multi-turn trace whose conversations share system prompts:

  round-robin   --policy round-robin
  least-loaded  --policy least-loaded
  kv-approx     --policy kv              (approximate index: the frontend's own decisions)
  kv-events     --policy kv --nats URL   (mockers publish KV events; needs nats-server)

Each run of a mode gets fresh mockers (empty caches). `--repeats N` runs every mode N times,
interleaved (mode order rotates each round, so a burst of load elsewhere on a shared machine does
not always hit the same mode); the report is the median over runs. Reports TTFT p50/p99 and
throughput, the 1-minute load average around each run, writes a JSON result file and a plot
(matplotlib, installed with pip if missing).

Trace: generated (default), or Mooncake JSONL (`--mooncake FILE`: one object per line with
`timestamp`, `input_length`, `output_length`, `hash_ids`; each hash id becomes a deterministic
text block, so equal hash ids give equal prefixes; requests are replayed closed-loop in file
order, timestamps are not used). `--write-mooncake FILE` writes a small synthetic trace in that
format (documents shared by several requests, as in Mooncake's traces) and exits.

Usage:
  python3 benches/kv_routing/experiment.py --bin target/release/switchyard --out benches/kv_routing/out
  python3 -m unittest benches/kv_routing/test_experiment.py     # the trace parsers
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
    with open(args.mooncake) as f:
        return parse_mooncake(f, args.seed, args.mooncake_block_bytes, args.max_tokens, args.limit)


def parse_mooncake(lines, seed, block_bytes, max_tokens, limit=0):
    """Each hash id becomes one text block (the same text wherever the id appears), so requests
    sharing a hash-id prefix share a prompt prefix. Output lengths are capped at `max_tokens`;
    blank lines are skipped; a malformed line raises ValueError naming its line number."""
    blocks = {}
    rng = random.Random(seed)
    convs = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
            ids = rec["hash_ids"]
            out = int(rec.get("output_length", max_tokens))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"Mooncake trace line {n}: {e}") from None
        parts = []
        for h in ids:
            if h not in blocks:
                blocks[h] = f"<{h}>" + text(rng, block_bytes)
            parts.append(blocks[h])
        convs.append([{"kind": "completion", "prompt": "".join(parts),
                       "max_tokens": max(1, min(out, max_tokens))}])
        if limit and len(convs) >= limit:
            break
    return convs


def synthetic_mooncake(records, seed, docs=6, doc_blocks=(6, 14), unique_blocks=(1, 3)):
    """Mooncake-format records: each request reads a prefix of one shared document (its hash
    ids) and adds a few ids of its own, like Mooncake's conversation and tool-use traces."""
    rng = random.Random(seed)
    next_id = 0
    documents = []
    for _ in range(docs):
        n = rng.randint(*doc_blocks)
        documents.append(list(range(next_id, next_id + n)))
        next_id += n
    out = []
    t = 0
    for _ in range(records):
        doc = rng.choice(documents)
        shared = doc[:rng.randint(len(doc) // 2, len(doc))]
        own = list(range(next_id, next_id + rng.randint(*unique_blocks)))
        next_id += len(own)
        ids = shared + own
        t += rng.randint(50, 400)
        out.append({"timestamp": t, "input_length": 512 * len(ids),
                    "output_length": rng.randint(4, 32), "hash_ids": ids})
    return out


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


async def run_trace(ports, convs, concurrency):
    """Closed loop: `concurrency` clients, each replaying whole conversations. With several
    frontends, turn t of conversation c goes to frontend (c + t) mod N, as a load balancer
    without affinity would send it."""
    queue = asyncio.Queue()
    for c in enumerate(convs):
        queue.put_nowait(c)
    results = []

    async def worker():
        while True:
            try:
                c, conv = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for t, turn in enumerate(conv):
                port = ports[(c + t) % len(ports)]
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
        policy = {"round-robin": "round-robin", "least-loaded": "least-loaded",
                  "kv-approx": "kv", "kv-events": "kv"}[mode]
        fe_ports = []
        for _ in range(args.frontends):
            fe_port = free_port()
            argv = [args.bin, "serve", "--listen", f"127.0.0.1:{fe_port}", "--policy", policy]
            if args.frontend_config:
                argv += ["--config", args.frontend_config]
            for port in workers:
                argv += ["--worker", f"{MODEL}=http://127.0.0.1:{port}"]
            if nats_url:
                argv += ["--nats", nats_url]
            procs.spawn(argv, log)
            fe_ports.append(fe_port)
        for fe_port in fe_ports:
            wait_http(f"http://127.0.0.1:{fe_port}/health")
        if nats_url:
            time.sleep(1.5)  # load snapshots and the initial dumps reach the index
        load_before = os.getloadavg()[0]
        results, elapsed = asyncio.run(run_trace(fe_ports, convs, args.concurrency))
        load_after = os.getloadavg()[0]
        cache = mocker_cache_totals(workers)
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
        "loadavg_1m": [load_before, load_after],
        # Cache efficiency, independent of CPU noise: prompt blocks served from cache vs
        # prefilled, summed over the mockers.
        "cached_blocks": cache["hits"],
        "prefilled_blocks": cache["prefill"],
        "hit_rate": cache["hits"] / max(1, cache["hits"] + cache["prefill"]),
        "ttfts_ms": ttfts,
    }


def mocker_cache_totals(ports):
    """Prefix-cache hits and prefilled blocks, summed over the mockers' /metrics."""
    names = {"switchyard_mocker_prefix_cache_hits_total": "hits",
             "switchyard_mocker_prefill_blocks_total": "prefill"}
    totals = {"hits": 0, "prefill": 0}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] in names:
                    totals[names[parts[0]]] += int(float(parts[1]))
    return totals


def summarize(mode, runs):
    """Median over runs of each figure; every run kept for the record."""
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    best = min(runs, key=lambda r: abs(r["ttft_p50_ms"] - med("ttft_p50_ms")))
    return {
        "mode": mode,
        "runs": len(runs),
        "requests": runs[0]["requests"],
        "ok": min(r["ok"] for r in runs),
        "ttft_p50_ms": med("ttft_p50_ms"),
        "ttft_p99_ms": med("ttft_p99_ms"),
        "ttft_mean_ms": med("ttft_mean_ms"),
        "throughput_rps": med("throughput_rps"),
        "hit_rate": med("hit_rate"),
        "per_run": [{k: r[k] for k in ("ttft_p50_ms", "ttft_p99_ms", "ttft_mean_ms",
                                       "throughput_rps", "ok", "loadavg_1m", "per_instance",
                                       "cached_blocks", "prefilled_blocks", "hit_rate")}
                    for r in runs],
        # The CDF in the plot is the run whose p50 is closest to the median.
        "ttfts_ms": best["ttfts_ms"],
    }


def plot(results, path, args):
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
    axes[0].set_title(f"Time to first token (median of {results[0].get('runs', 1)})")
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
    fes = f", {args.frontends} frontends" if args.frontends > 1 else ""
    trace = (f"Mooncake trace {os.path.basename(args.mooncake)}" if args.mooncake else
             f"{args.prefixes} shared prefixes, {args.conversations} conversations x "
             f"{args.turns} turns")
    fig.suptitle(f"{args.mockers} mockers x {args.kv_blocks} KV blocks{fes}, {trace}", fontsize=9)
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
    ap.add_argument("--frontend-config", metavar="YAML",
                    help="frontend config file for every mode (e.g. kv: weights), flags win")
    ap.add_argument("--frontends", type=int, default=1,
                    help="frontends behind a round-robin client (turns of one conversation "
                         "alternate between them)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mooncake", help="Mooncake trace JSONL instead of the generated trace")
    ap.add_argument("--mooncake-block-bytes", type=int, default=256)
    ap.add_argument("--limit", type=int, default=0, help="max Mooncake records (0 = all)")
    ap.add_argument("--write-mooncake", metavar="FILE",
                    help="write a synthetic Mooncake-format trace to FILE and exit")
    ap.add_argument("--mooncake-records", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1, help="runs per mode; medians are reported")
    ap.add_argument("--name", default="results", help="output file stem (NAME.json, NAME.png)")
    args = ap.parse_args()

    if args.write_mooncake:
        with open(args.write_mooncake, "w") as f:
            for rec in synthetic_mooncake(args.mooncake_records, args.seed):
                f.write(json.dumps(rec) + "\n")
        print(f"wrote {args.mooncake_records} records to {args.write_mooncake}")
        return

    os.makedirs(args.out, exist_ok=True)
    convs = mooncake_trace(args) if args.mooncake else generated_trace(args)
    print(f"trace: {len(convs)} conversations, {sum(len(c) for c in convs)} requests; "
          f"load average {os.getloadavg()}", flush=True)
    modes = args.modes.split(",")
    runs = {m: [] for m in modes}
    for rep_i in range(args.repeats):
        order = modes[rep_i % len(modes):] + modes[:rep_i % len(modes)]
        for mode in order:
            r = run_mode(args, mode, convs, args.out)
            runs[mode].append(r)
            print(f"[{rep_i + 1}/{args.repeats}] {mode:13s} ok {r['ok']}/{r['requests']}  "
                  f"TTFT p50 {r['ttft_p50_ms']:8.1f} ms  p99 {r['ttft_p99_ms']:8.1f} ms  "
                  f"throughput {r['throughput_rps']:7.1f} req/s  "
                  f"hit {r['hit_rate']:.3f}  load {r['loadavg_1m'][0]:.2f}->{r['loadavg_1m'][1]:.2f}  "
                  f"spread {sorted(r['per_instance'].values())}", flush=True)
    results = [summarize(m, runs[m]) for m in modes]
    for r in results:
        print(f"median of {r['runs']}: {r['mode']:13s} TTFT p50 {r['ttft_p50_ms']:8.1f} ms  "
              f"p99 {r['ttft_p99_ms']:8.1f} ms  throughput {r['throughput_rps']:7.1f} req/s  "
              f"cache hit rate {r['hit_rate']:.3f}")
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    base = next((r for r in results if r["mode"] == "round-robin"), None)
    for r in results:
        if base and r is not base and r["ttft_p50_ms"] > 0:
            print(f"{r['mode']}: TTFT p50 {base['ttft_p50_ms'] / r['ttft_p50_ms']:.2f}x vs round-robin")
    try:
        png = os.path.join(args.out, "kv_routing.png" if args.name == "results"
                           else f"kv_routing_{args.name}.png")
        plot(results, png, args)
        print(f"plot: {png}")
    except Exception as e:  # the numbers stand without the plot
        print(f"plot failed: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
