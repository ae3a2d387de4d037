#!/usr/bin/env python3
"""One markdown summary of several experiment result files (one per regime), for the docs.

    python3 benches/kv_routing/report.py "256 blocks=out/b256/results.json" "160 blocks=..."

For each regime it prints one row per Switchyard mode with its TTFT mean and p99, hit rate
and throughput, each followed by the ratio to the best peer in the same run (> 1 means
Switchyard is better), then the best peer's figures and the trace's floor (one infinite cache,
no queueing). `--detail` adds each regime's full table (every router).
"""
import argparse
import json


def fmt_ratio(x):
    return f"{x:.2f}x" if x == x else "-"


def summary_rows(label, data):
    """Markdown rows for one regime's result file (a dict as experiment.py writes it)."""
    results = data["results"]
    versus = data.get("versus_best_peer", {})
    peers = [r for r in results if r.get("peer")]
    floor = data.get("floor")
    floor_txt = (f"{floor['ttft_mean_ms']:.1f} / {floor['ttft_p99_ms']:.0f} ms, "
                 f"{floor['hit_rate']:.3f}" if floor else "-")
    if peers:
        best = {"mean": min(peers, key=lambda r: r["ttft_mean_ms"]),
                "p99": min(peers, key=lambda r: r["ttft_p99_ms"]),
                "hit": max(peers, key=lambda r: r["hit_rate"]),
                "rps": max(peers, key=lambda r: r["throughput_rps"])}
        peer_txt = (f"{best['mean']['ttft_mean_ms']:.1f} ({best['mean']['mode']}) / "
                    f"{best['p99']['ttft_p99_ms']:.1f} ({best['p99']['mode']}) ms, "
                    f"{best['hit']['hit_rate']:.3f} ({best['hit']['mode']}), "
                    f"{best['rps']['throughput_rps']:.1f} req/s")
    else:
        peer_txt = "-"
    rows = []
    for r in results:
        if r.get("peer"):
            continue
        v = versus.get(r["mode"], {}).get("ratio", {})
        rows.append(
            f"| {label} | {r['mode']} | {r['ttft_mean_ms']:.1f} ms "
            f"({fmt_ratio(v.get('ttft_mean_ms', float('nan')))}) | "
            f"{r['ttft_p99_ms']:.1f} ms ({fmt_ratio(v.get('ttft_p99_ms', float('nan')))}) | "
            f"{r['hit_rate']:.3f} ({fmt_ratio(v.get('hit_rate', float('nan')))}) | "
            f"{r['throughput_rps']:.1f} ({fmt_ratio(v.get('throughput_rps', float('nan')))}) | "
            f"{peer_txt} | {floor_txt} |")
    return rows


HEADER = ("| regime | Switchyard mode | TTFT mean (vs best peer) | TTFT p99 (vs best peer) | "
          "hit rate (vs best peer) | req/s (vs best peer) | best peer: mean / p99, hit, req/s "
          "| floor: mean / p99, hit |\n|---|---|---|---|---|---|---|---|")


def load_range(data):
    lo = min(r["loadavg_1m_range"][0] for r in data["results"])
    hi = max(r["loadavg_1m_range"][1] for r in data["results"])
    return lo, hi


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", metavar="LABEL=PATH")
    ap.add_argument("--detail", action="store_true", help="also every regime's full table")
    args = ap.parse_args()
    loaded = []
    for spec in args.files:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"{spec!r}: expected LABEL=PATH")
        with open(path) as f:
            loaded.append((label, json.load(f)))
    print(HEADER)
    for label, data in loaded:
        print("\n".join(summary_rows(label, data)))
    if args.detail:
        for label, data in loaded:
            lo, hi = load_range(data)
            runs = data["results"][0]["runs"]
            print(f"\n**{label}** (median of {runs} interleaved runs, load average "
                  f"{lo:.1f}–{hi:.1f}):\n\n{data['table']}")


if __name__ == "__main__":
    main()
