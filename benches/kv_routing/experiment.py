#!/usr/bin/env python3
"""KV-aware routing experiment (issue 4, "Measure and report").

Starts N mockers with a limited KV cache and nonzero prefill/decode timing, a frontend per
routing mode, and replays a multi-turn trace whose conversations share system prompts:

  round-robin   --policy round-robin
  least-loaded  --policy least-loaded
  kv-approx     --policy kv              (approximate index: the frontend's own decisions)
  kv-events     --policy kv --nats URL   (mockers publish KV events; needs nats-server)
  kv-shared     --policy kv --nats URL   (frontends only: mockers publish no KV events, the
                                          frontends share their routing decisions)

Peers (`--peer sglang-router,smg,vllm-router`, or their names inside `--modes`): each peer
router is installed by the script into its own virtualenv from PyPI (`peers.py`: pinned
versions, cached under ~/.cache/switchyard-bench/venvs) and routes to the same kind of fresh
mockers with its `cache_aware` policy. Peers always run as one instance; `--frontends N`
applies to Switchyard's modes. `--bin-alt NAME=PATH` adds another Switchyard binary and
`--config-alt NAME=YAML` another frontend config: a mode written `kv-approx@NAME` runs with
that binary and/or config (e.g. a new policy, or other `kv:` weights, against the current one).

Each run of a mode gets fresh mockers (empty caches). `--repeats N` runs every mode N times,
interleaved (mode order rotates each round, so a burst of load elsewhere on a shared machine does
not always hit the same mode); the report is the median over runs. Reports TTFT p50/mean/p99,
throughput, the cache-hit rate and the per-worker spread (both from the mockers' own /metrics,
so they are measured the same way for every router), the 1-minute load average around each run, writes a JSON result file and a plot
(matplotlib, installed with pip if missing).

Heterogeneous pool: `--slow-mockers N --slow-factor F` gives the first N mockers F times the
prefill time per block (`--ttft-ms`).

Trace: generated (default), or Mooncake JSONL (`--mooncake FILE`: one object per line with
`timestamp`, `input_length`, `output_length`, `hash_ids`; each hash id becomes a deterministic
text block, so equal hash ids give equal prefixes; requests are replayed closed-loop in file
order, timestamps are not used). `--write-mooncake FILE` writes a small synthetic trace in that
format (documents shared by several requests, as in Mooncake's traces) and exits.

Beside this file (the processes, the client, the plot and the CLI): traces.py (the traces
and their floor), figures.py (a run's figures, medians, ratios to the best peer), peers.py
(installing and starting the peer routers) and report.py (one summary of several regimes).

Usage:
  python3 benches/kv_routing/experiment.py --bin target/release/switchyard --out benches/kv_routing/out
  python3 benches/kv_routing/experiment.py --bin target/release/switchyard \
      --modes kv-approx,kv-events --peer sglang-router,smg,vllm-router --repeats 5
  python3 -m unittest benches/kv_routing/test_experiment.py     # parsers and report maths
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
from figures import (markdown_table, parse_mocker_counters, run_figures,  # noqa: E402
                     summarize, versus_best_peer)
from traces import floor, generated_trace, mooncake_trace, synthetic_mooncake  # noqa: E402

MODEL = "mock-model"
SWITCHYARD_MODES = {"round-robin": "round-robin", "least-loaded": "least-loaded",
                    "kv-approx": "kv", "kv-events": "kv",
                    "kv-shared": "kv"}


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Ports:
    """Ports for mockers, routers and NATS: from the OS (`base` None), or the next free one
    in [base, base + span) so a shared machine's users can keep to agreed ranges."""

    def __init__(self, base=None, span=900):
        self.base, self.span, self.next = base, span, 0

    def take(self):
        if self.base is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return s.getsockname()[1]
        for _ in range(self.span):
            port = self.base + self.next
            self.next = (self.next + 1) % self.span
            if port_is_free(port):
                return port
        raise RuntimeError(f"no free port in {self.base}..{self.base + self.span}")


def split_mode(mode):
    """`kv-approx@predict` -> ("kv-approx", "predict"); `smg` -> ("smg", None)."""
    name, _, alias = mode.partition("@")
    return name, (alias or None)


def check_modes(modes, alts):
    """Every mode is a Switchyard mode (optionally @ a --bin-alt/--config-alt name) or a peer."""
    for mode in modes:
        name, alias = split_mode(mode)
        if peers.is_peer(name):
            if alias:
                raise SystemExit(f"mode {mode!r}: peers take no @binary")
        elif name not in SWITCHYARD_MODES:
            raise SystemExit(f"unknown mode {name!r} (Switchyard: {', '.join(SWITCHYARD_MODES)};"
                             f" peers: {', '.join(peers.PEERS)})")
        elif alias and alias not in alts:
            raise SystemExit(f"mode {mode!r}: no --bin-alt or --config-alt named {alias}")


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
                    results.append({**await one_request(port, turn), "turn": t})
                except Exception as e:  # a failed request is counted, never fatal
                    results.append({"ok": False, "status": 0, "ttft": None, "total": None,
                                    "error": str(e), "turn": t})

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


def mocker_argv(args, i, port, nats_url):
    """Mocker `i` of the pool: the first `--slow-mockers` prefill `--slow-factor` times slower."""
    ttft = args.ttft_ms * (args.slow_factor if i < args.slow_mockers else 1.0)
    argv = [args.bin, "mocker", "--listen", f"127.0.0.1:{port}", "--model", MODEL,
            "--kv-blocks", str(args.kv_blocks), "--block-size", str(args.block_size),
            "--ttft-ms", str(ttft), "--itl-ms", str(args.itl_ms),
            "--max-running", str(args.max_running)]
    return argv + (["--nats", nats_url] if nats_url else [])


def wait_until(check, what, proc, deadline_s=60.0):
    end = time.time() + deadline_s
    while time.time() < end:
        if check():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} (see its log)")
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready in {deadline_s}s")


def start_routers(args, mode, workers, nats_url, ports, procs, log):
    """Starts the router(s) of `mode` in front of `workers`; returns the ports clients use."""
    name, alias = split_mode(mode)
    urls = [f"http://127.0.0.1:{p}" for p in workers]
    if peers.is_peer(name):
        port = ports.take()
        venv = peers.ensure_venv(name, args.venv_dir)
        proc = procs.spawn(peers.command(name, venv, port, ports.take(), urls), log)
        wait_until(lambda: peers.ready(port, urls), f"{name} on port {port}", proc)
        return [port]
    binary = args.bin_alts.get(alias, args.bin)
    config = args.config_alts.get(alias, args.frontend_config)
    fe_ports = []
    for _ in range(args.frontends):
        fe_port = ports.take()
        argv = [binary, "serve", "--listen", f"127.0.0.1:{fe_port}",
                "--policy", SWITCHYARD_MODES[name]]
        if config:
            argv += ["--config", config]
        for url in urls:
            argv += ["--worker", f"{MODEL}={url}"]
        if nats_url:
            argv += ["--nats", nats_url]
        procs.spawn(argv, log)
        fe_ports.append(fe_port)
    for fe_port in fe_ports:
        wait_http(f"http://127.0.0.1:{fe_port}/health")
    if nats_url:
        time.sleep(1.5)  # load snapshots and the initial dumps reach the index
    return fe_ports


def run_mode(args, mode, convs, logdir, ports):
    procs = Procs()
    log = open(os.path.join(logdir, f"{mode.replace('@', '_')}.log"), "w")
    try:
        nats_url = None
        if split_mode(mode)[0] in ("kv-events", "kv-shared"):
            nats_port = ports.take()
            procs.spawn([args.nats_server, "-a", "127.0.0.1", "-p", str(nats_port)], log)
            wait_tcp(nats_port)
            nats_url = f"nats://127.0.0.1:{nats_port}"
        workers = []
        for i in range(args.mockers):
            port = ports.take()
            events_url = nats_url if split_mode(mode)[0] == "kv-events" else None
            procs.spawn(mocker_argv(args, i, port, events_url), log)
            workers.append(port)
        for port in workers:
            wait_http(f"http://127.0.0.1:{port}/health")
        router_ports = start_routers(args, mode, workers, nats_url, ports, procs, log)
        # Peers probe their workers while registering; the counters start from here.
        before = [mocker_counters(p) for p in workers]
        load_before = os.getloadavg()[0]
        results, elapsed = asyncio.run(run_trace(router_ports, convs, args.concurrency))
        load_after = os.getloadavg()[0]
        after = [mocker_counters(p) for p in workers]
    finally:
        procs.stop()
        log.close()
    delta = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before)]
    return run_figures(mode, results, elapsed, delta, args.slow_mockers,
                       [load_before, load_after])


def mocker_counters(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return parse_mocker_counters(r.read().decode())


def plot(results, path, args, ideal=None):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"],
                       check=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [r["mode"] for r in results]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    x = range(len(modes))
    for off, key, label in ((-0.27, "ttft_p50_ms", "p50"), (0.0, "ttft_mean_ms", "mean"),
                            (0.27, "ttft_p99_ms", "p99")):
        axes[0].bar([i + off for i in x], [r[key] for r in results], 0.27, label=label)
    if ideal:
        axes[0].axhline(ideal["ttft_mean_ms"], color="tab:orange", linestyle=":", linewidth=1,
                        label="floor mean")
    axes[0].set_ylabel("TTFT (ms)")
    axes[0].set_title(f"Time to first token (median of {results[0].get('runs', 1)})")
    axes[0].legend()
    axes[1].bar(list(x), [r["throughput_rps"] for r in results], color="tab:green")
    axes[1].set_ylabel("requests / s")
    axes[1].set_title("Throughput")
    axes[2].bar(list(x), [r["hit_rate"] for r in results], color="tab:purple")
    if ideal:
        axes[2].axhline(ideal["hit_rate"], color="black", linestyle=":", linewidth=1,
                        label="one infinite cache")
        axes[2].legend(fontsize=7, loc="lower left")
    axes[2].set_ylabel("prompt blocks from cache")
    axes[2].set_title("Cache hit rate (mockers' counters)")
    for ax in axes[:3]:
        ax.set_xticks(list(x), modes, rotation=25, fontsize=8)
    for r in results:
        v = sorted(r["ttfts_ms"])
        if v:
            axes[3].plot(v, [i / len(v) for i in range(len(v))], label=r["mode"],
                         linestyle="--" if r.get("peer") else "-")
    axes[3].set_xscale("log")
    axes[3].set_xlabel("TTFT (ms)")
    axes[3].set_ylabel("CDF")
    axes[3].set_title("TTFT distribution")
    axes[3].legend(fontsize=7)
    fes = (f", {args.frontends} Switchyard frontends (peers: 1)" if args.frontends > 1
           else "")
    trace = (f"Mooncake trace {os.path.basename(args.mooncake)}" if args.mooncake else
             f"{args.prefixes} shared prefixes, {args.conversations} conversations x "
             f"{args.turns} turns")
    slow = (f", {args.slow_mockers} of them {args.slow_factor:g}x slower at prefill"
            if args.slow_mockers else "")
    fig.suptitle(f"{args.mockers} mockers x {args.kv_blocks} KV blocks{slow}{fes}, {trace}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def named_paths(specs, flag):
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{flag} {spec!r}: expected NAME=PATH")
        out[name] = path
    return out


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
    ap.add_argument("--zipf", type=float, default=0.0, metavar="S",
                    help="prefix popularity Zipf(S) instead of round-robin (0 = round-robin)")
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
    ap.add_argument("--peer", default="",
                    help=f"peer routers to add to --modes, comma-separated: {', '.join(peers.PEERS)}")
    ap.add_argument("--bin-alt", action="append", default=[], metavar="NAME=PATH",
                    help="another switchyard binary; modes written MODE@NAME run it (repeatable)")
    ap.add_argument("--slow-mockers", type=int, default=0,
                    help="heterogeneous pool: this many mockers prefill --slow-factor times slower")
    ap.add_argument("--slow-factor", type=float, default=2.0)
    ap.add_argument("--port-base", type=int,
                    help="take ports from BASE..BASE+899 instead of the OS's free ports")
    ap.add_argument("--venv-dir", default=peers.DEFAULT_CACHE,
                    help="where the peers' virtualenvs are cached")
    ap.add_argument("--config-alt", action="append", default=[], metavar="NAME=YAML",
                    help="another frontend config; modes written MODE@NAME use it (repeatable)")
    args = ap.parse_args()
    args.bin_alts = named_paths(args.bin_alt, "--bin-alt")
    args.config_alts = named_paths(args.config_alt, "--config-alt")

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
    modes = [m for m in args.modes.split(",") + args.peer.split(",") if m]
    check_modes(modes, {**args.bin_alts, **args.config_alts})
    for m in modes:  # install before the first run, so no run waits on pip
        if peers.is_peer(m):
            peers.ensure_venv(m, args.venv_dir)
    ports = Ports(args.port_base)
    ideal = floor(convs, args.block_size * 4, args.ttft_ms)
    print(f"floor (one infinite cache, no queueing, fast mockers): TTFT p50 "
          f"{ideal['ttft_p50_ms']:.1f} mean {ideal['ttft_mean_ms']:.1f} "
          f"p99 {ideal['ttft_p99_ms']:.1f} ms, hit rate {ideal['hit_rate']:.3f}", flush=True)
    runs = {m: [] for m in modes}
    for rep_i in range(args.repeats):
        order = modes[rep_i % len(modes):] + modes[:rep_i % len(modes)]
        for mode in order:
            r = run_mode(args, mode, convs, args.out, ports)
            runs[mode].append(r)
            print(f"[{rep_i + 1}/{args.repeats}] {mode:13s} ok {r['ok']}/{r['requests']}  "
                  f"TTFT p50 {r['ttft_p50_ms']:7.1f} mean {r['ttft_mean_ms']:7.1f} "
                  f"p99 {r['ttft_p99_ms']:7.1f} ms  {r['throughput_rps']:6.1f} req/s  "
                  f"hit {r['hit_rate']:.3f}  load {r['loadavg_1m'][0]:.2f}->{r['loadavg_1m'][1]:.2f}  "
                  f"per worker {r['per_worker']}  by turn "
                  f"{[round(x, 1) for x in r['ttft_mean_by_turn_ms']]}", flush=True)
    results = [summarize(m, runs[m]) for m in modes]
    versus = versus_best_peer(results)
    table = markdown_table(results, versus)
    print(f"medians of {args.repeats} interleaved runs:\n{table}")
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump({"args": vars(args), "results": results, "versus_best_peer": versus,
                   "floor": ideal, "table": table}, f, indent=1)
    base = next((r for r in results if r["mode"] == "round-robin"), None)
    for r in results:
        if base and r is not base and r["ttft_p50_ms"] > 0:
            print(f"{r['mode']}: TTFT p50 {base['ttft_p50_ms'] / r['ttft_p50_ms']:.2f}x vs round-robin")
    try:
        png = os.path.join(args.out, "kv_routing.png" if args.name == "results"
                           else f"kv_routing_{args.name}.png")
        plot(results, png, args, ideal)
        print(f"plot: {png}")
    except Exception as e:  # the numbers stand without the plot
        print(f"plot failed: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
