#!/usr/bin/env python3
"""Predicted-TTFT routing: `kv` in `mode: predictive` (the default) against `mode: weights`.

Reuses experiment.py's trace and client (imported, not copied). Each run gets fresh mockers
(optionally a heterogeneous pool: `--slow N` mockers prefill `--slow-factor`× slower) and
one frontend with `--policy kv` and `kv.mode` set per configuration; the configurations run
interleaved `--repeats` times and the report is the median per configuration. For the
predictive runs it also reads the frontend's `switchyard_ttft_prediction_error_ratio`
histogram after the trace: the p50 of |predicted − observed| / observed over predictions
made from learned rates (after warm-up), interpolated within buckets.

Usage:
  python3 benches/kv_routing/predictive.py --bin target/release/switchyard --repeats 3
  python3 benches/kv_routing/predictive.py --bin ... --slow 2 --slow-factor 2 --kv-blocks 160
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import experiment as ex  # noqa: E402

CONFIGS = ("predictive", "weights")


def error_p50(metrics_text):
    """p50 of the learned-prediction error histogram (linear within a bucket), and its count."""
    prefix = "switchyard_ttft_prediction_error_ratio_bucket{"
    buckets = []
    for line in metrics_text.splitlines():
        if line.startswith(prefix) and 'learned="true"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets.append((bound, float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return float("nan"), 0
    total = buckets[-1][1]
    half = total / 2
    lo_bound, lo_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= half:
            if bound == float("inf"):
                return lo_bound, int(total)
            return lo_bound + (bound - lo_bound) * (half - lo_count) / max(1e-9, count - lo_count), int(total)
        lo_bound, lo_count = bound, count
    return float("nan"), int(total)


def run(args, config, convs, port_base, logdir):
    procs = ex.Procs()
    log = open(os.path.join(logdir, f"{config}.log"), "a")
    yaml = os.path.join(logdir, f"{config}.yaml")
    with open(yaml, "w") as f:
        f.write(f"kv:\n  mode: {config}\n")
        if config == "predictive" and args.predict:
            f.write("  predict:\n")
            for kv in args.predict:
                key, value = kv.split("=", 1)
                f.write(f"    {key}: {value}\n")
    try:
        workers = []
        for i in range(args.mockers):
            port = port_base + i
            ttft = args.ttft_ms * (args.slow_factor if i < args.slow else 1.0)
            procs.spawn([args.bin, "mocker", "--listen", f"127.0.0.1:{port}", "--model", ex.MODEL,
                         "--kv-blocks", str(args.kv_blocks), "--ttft-ms", str(ttft),
                         "--itl-ms", str(args.itl_ms), "--max-running", str(args.max_running)], log)
            workers.append(port)
        for port in workers:
            ex.wait_http(f"http://127.0.0.1:{port}/health")
        fe = port_base + args.mockers
        argv = [args.bin, "serve", "--listen", f"127.0.0.1:{fe}", "--policy", "kv",
                "--config", yaml]
        if args.engine:
            # Declared engines are scraped for load (running, waiting): the model's queue terms.
            with open(yaml, "a") as f:
                f.write("workers:\n" + "".join(
                    f"  - {{model: {ex.MODEL}, url: \"http://127.0.0.1:{p}\", engine: {args.engine}}}\n"
                    for p in workers))
        else:
            for port in workers:
                argv += ["--worker", f"{ex.MODEL}=http://127.0.0.1:{port}"]
        procs.spawn(argv, log)
        ex.wait_http(f"http://127.0.0.1:{fe}/health")
        results, elapsed = asyncio.run(ex.run_trace([fe], convs, args.concurrency))
        with urllib.request.urlopen(f"http://127.0.0.1:{fe}/metrics", timeout=5) as r:
            err, n = error_p50(r.read().decode())
        cache = ex.mocker_cache_totals(workers)
    finally:
        procs.stop()
        log.close()
    ok = [r for r in results if r["ok"]]
    ttfts = [r["ttft"] * 1000 for r in ok]
    slow_ids = {f"127.0.0.1:{p}" for p in workers[: args.slow]}
    return {
        "ok": len(ok), "requests": len(results),
        "p50": ex.pct(ttfts, 50), "mean": statistics.fmean(ttfts), "p99": ex.pct(ttfts, 99),
        "rps": len(ok) / elapsed,
        "hit": cache["hits"] / max(1, cache["hits"] + cache["prefill"]),
        "slow_share": sum(1 for r in ok if r.get("instance") in slow_ids) / max(1, len(ok)),
        "err_p50": err, "err_n": n,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/switchyard")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--port-base", type=int, default=21100, help="ports used: base .. base+mockers")
    ap.add_argument("--mockers", type=int, default=4)
    ap.add_argument("--slow", type=int, default=0, help="mockers that prefill slower")
    ap.add_argument("--slow-factor", type=float, default=2.0)
    ap.add_argument("--kv-blocks", type=int, default=256)
    ap.add_argument("--ttft-ms", type=float, default=2.0)
    ap.add_argument("--itl-ms", type=float, default=5.0)
    ap.add_argument("--max-running", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--prefixes", type=int, default=8)
    ap.add_argument("--system-bytes", type=int, default=3000)
    ap.add_argument("--user-bytes", type=int, default=200)
    ap.add_argument("--assistant-bytes", type=int, default=200)
    ap.add_argument("--conversations", type=int, default=64)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--engine", help="declare the mockers' engine (e.g. mocker) so the frontend "
                    "scrapes their load; default: generic workers, no load reports")
    ap.add_argument("--predict", action="append", default=[], metavar="KEY=VALUE",
                    help="a kv.predict setting for the predictive runs (repeatable)")
    ap.add_argument("--json", help="write the per-run results here")
    args = ap.parse_args()
    convs = ex.generated_trace(args)
    logdir = tempfile.mkdtemp(prefix="predictive-")
    runs = {c: [] for c in CONFIGS}
    for k in range(args.repeats):
        order = CONFIGS if k % 2 == 0 else CONFIGS[::-1]
        for config in order:
            r = run(args, config, convs, args.port_base, logdir)
            runs[config].append(r)
            print(f"[{k + 1}/{args.repeats}] {config:10} p50 {r['p50']:6.1f}  mean {r['mean']:6.1f}  "
                  f"p99 {r['p99']:6.1f} ms  {r['rps']:5.1f} req/s  hit {r['hit']:.3f}  "
                  f"slow share {r['slow_share']:.2f}  err p50 {r['err_p50']:.3f} (n={r['err_n']})",
                  flush=True)
    for config in CONFIGS:
        med = lambda key: statistics.median(r[key] for r in runs[config])  # noqa: E731
        print(f"median {config:10} p50 {med('p50'):6.1f}  mean {med('mean'):6.1f}  p99 {med('p99'):6.1f} ms  "
              f"{med('rps'):5.1f} req/s  hit {med('hit'):.3f}  slow share {med('slow_share'):.2f}"
              + (f"  err p50 {med('err_p50'):.3f}" if config == "predictive" else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
