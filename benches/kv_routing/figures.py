"""Figures of the KV-routing experiment: one run's numbers from the client's timings and the
mockers' counters, medians over runs, ratios against the best peer and the markdown table.
Pure functions (no sockets, no processes), so the report maths is unit-tested.
"""
import statistics

import peers

def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))
    return v[k]


def run_figures(mode, results, elapsed, per_mocker, slow_mockers, loadavg):
    """One run's figures. Cache and spread come from the mockers' counters (`per_mocker`, in
    mocker order), so every router, ours or a peer, is measured the same way."""
    ok = [r for r in results if r["ok"]]
    ttfts = [r["ttft"] * 1000 for r in ok]
    hits = sum(m["hits"] for m in per_mocker)
    prefill = sum(m["prefill"] for m in per_mocker)
    per_worker = [m["requests"] for m in per_mocker]
    return {
        "mode": mode,
        "requests": len(results),
        "ok": len(ok),
        "ttft_p50_ms": pct(ttfts, 50),
        "ttft_p99_ms": pct(ttfts, 99),
        "ttft_mean_ms": statistics.fmean(ttfts) if ttfts else float("nan"),
        "throughput_rps": len(ok) / elapsed if elapsed > 0 else 0.0,
        "elapsed_s": elapsed,
        "per_worker": per_worker,
        "spread_max_min": spread(per_worker),
        # Share of requests sent to the slow mockers of a heterogeneous pool.
        "slow_share": (sum(per_worker[:slow_mockers]) / max(1, sum(per_worker))
                       if slow_mockers else None),
        "loadavg_1m": loadavg,
        # Cache efficiency, independent of CPU noise: prompt blocks served from cache vs
        # prefilled, summed over the mockers.
        "cached_blocks": hits,
        "prefilled_blocks": prefill,
        "hit_rate": hits / max(1, hits + prefill),
        # Where the time goes: turn 0 carries the (possibly cold) shared prefix, later turns
        # find their history only where the earlier turns went.
        "ttft_mean_by_turn_ms": mean_by_turn(ok),
        "ttfts_ms": ttfts,
    }


def mean_by_turn(ok):
    by = {}
    for r in ok:
        by.setdefault(r.get("turn", 0), []).append(r["ttft"] * 1000)
    return [statistics.fmean(by[t]) for t in sorted(by)]


def spread(per_worker):
    """Busiest over idlest worker by requests served (inf when one got none)."""
    if not per_worker:
        return float("nan")
    lo = min(per_worker)
    return max(per_worker) / lo if lo > 0 else float("inf")


MOCKER_COUNTERS = {"switchyard_mocker_prefix_cache_hits_total": "hits",
                   "switchyard_mocker_prefill_blocks_total": "prefill",
                   "switchyard_mocker_requests_total": "requests"}


def parse_mocker_counters(text):
    """Prefix-cache hit blocks, prefilled blocks and generation requests from a mocker's
    Prometheus text (names in runtime/switchyard-mocker/src/metrics.rs)."""
    totals = {v: 0 for v in MOCKER_COUNTERS.values()}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in MOCKER_COUNTERS:
            totals[MOCKER_COUNTERS[parts[0]]] += int(float(parts[1]))
    return totals


def summarize(mode, runs):
    """Median over runs of each figure; every run kept for the record."""
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    best = min(runs, key=lambda r: abs(r["ttft_p50_ms"] - med("ttft_p50_ms")))
    keys = ("ttft_p50_ms", "ttft_p99_ms", "ttft_mean_ms", "throughput_rps", "ok", "loadavg_1m",
            "per_worker", "spread_max_min", "slow_share", "cached_blocks", "prefilled_blocks",
            "hit_rate", "ttft_mean_by_turn_ms")
    return {
        "mode": mode,
        "peer": peers.is_peer(mode.partition("@")[0]),
        "runs": len(runs),
        "requests": runs[0]["requests"],
        "ok": min(r["ok"] for r in runs),
        "ttft_p50_ms": med("ttft_p50_ms"),
        "ttft_p99_ms": med("ttft_p99_ms"),
        "ttft_mean_ms": med("ttft_mean_ms"),
        "throughput_rps": med("throughput_rps"),
        "hit_rate": med("hit_rate"),
        "spread_max_min": med("spread_max_min"),
        "ttft_mean_by_turn_ms": [statistics.median(v) for v in
                                 zip(*(r["ttft_mean_by_turn_ms"] for r in runs))],
        "slow_share": (statistics.median(r["slow_share"] for r in runs)
                       if runs[0]["slow_share"] is not None else None),
        "loadavg_1m_range": [min(r["loadavg_1m"][0] for r in runs),
                             max(r["loadavg_1m"][1] for r in runs)],
        "per_run": [{k: r[k] for k in keys} for r in runs],
        # The CDF in the plot is the run whose p50 is closest to the median.
        "ttfts_ms": best["ttfts_ms"],
    }


# Lower is better for latencies, higher for the rest.
LOWER_BETTER = ("ttft_p50_ms", "ttft_mean_ms", "ttft_p99_ms")
HIGHER_BETTER = ("throughput_rps", "hit_rate")


def versus_best_peer(results):
    """For each Switchyard mode, each figure against the best peer's figure in the same run
    (best per figure: the lowest TTFT, the highest throughput and hit rate), as a ratio where
    > 1 means Switchyard is better: best-peer / ours for TTFT, ours / best-peer otherwise.
    Empty when the run had no peer."""
    peer_rows = [r for r in results if r["peer"]]
    if not peer_rows:
        return {}
    best = {k: min(r[k] for r in peer_rows) for k in LOWER_BETTER}
    best.update({k: max(r[k] for r in peer_rows) for k in HIGHER_BETTER})
    best_by = {k: next(r["mode"] for r in peer_rows if r[k] == best[k]) for k in best}
    out = {}
    for r in results:
        if r["peer"]:
            continue
        ratios = {}
        for k in LOWER_BETTER:
            ratios[k] = best[k] / r[k] if r[k] > 0 else float("nan")
        for k in HIGHER_BETTER:
            ratios[k] = r[k] / best[k] if best[k] > 0 else float("nan")
        out[r["mode"]] = {"ratio": ratios, "best_peer": best_by}
    return out


def markdown_table(results, versus):
    """The results as a markdown table, one row per mode, with the Switchyard rows' ratios
    to the best peer (mean, p99) in the last column."""
    rows = ["| router | TTFT p50 | TTFT mean | TTFT p99 | throughput | hit rate | "
            "spread max/min | vs best peer (mean, p99) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        v = versus.get(r["mode"])
        ratio = (f"{v['ratio']['ttft_mean_ms']:.2f}x, {v['ratio']['ttft_p99_ms']:.2f}x"
                 if v else "")
        slow = f" (slow {r['slow_share']:.2f})" if r.get("slow_share") is not None else ""
        rows.append(f"| {r['mode']} | {r['ttft_p50_ms']:.1f} ms | {r['ttft_mean_ms']:.1f} ms | "
                    f"{r['ttft_p99_ms']:.1f} ms | {r['throughput_rps']:.1f} req/s | "
                    f"{r['hit_rate']:.3f} | {r['spread_max_min']:.2f}{slow} | {ratio} |")
    return "\n".join(rows)
