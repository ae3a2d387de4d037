"""Checks of the routing experiment's trace parsers, peer commands and report maths:
`python3 -m unittest benches/kv_routing/test_experiment.py`."""
import io
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import experiment  # noqa: E402
import figures  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402
import traces  # noqa: E402


def parse(text, **kw):
    opts = {"seed": 7, "block_bytes": 100, "max_tokens": 16}
    opts.update(kw)
    return traces.parse_mooncake(io.StringIO(text), **opts)


class MooncakeParser(unittest.TestCase):
    TRACE = "\n".join([
        '{"timestamp": 0, "input_length": 1536, "output_length": 40, "hash_ids": [1, 2, 3]}',
        "",
        '{"timestamp": 5, "input_length": 1024, "output_length": 3, "hash_ids": [1, 2, 9]}',
        '{"timestamp": 9, "input_length": 512, "output_length": 0, "hash_ids": [4]}',
    ])

    def test_shared_hash_ids_give_shared_prompt_prefixes(self):
        convs = parse(self.TRACE)
        self.assertEqual(len(convs), 3, "blank line skipped")
        a, b, c = (conv[0]["prompt"] for conv in convs)
        # Requests 1 and 2 share ids [1, 2]: their prompts share exactly those blocks' text.
        shared = a.split("<3>")[0]
        self.assertTrue(shared.startswith("<1>") and "<2>" in shared)
        self.assertTrue(b.startswith(shared + "<9>"))
        self.assertTrue(c.startswith("<4>"))
        self.assertEqual(os.path.commonprefix([a, c]), "<")

    def test_each_id_is_one_block_of_about_block_bytes(self):
        (conv,) = parse('{"output_length": 1, "hash_ids": [5]}\n', block_bytes=300)
        self.assertGreaterEqual(len(conv[0]["prompt"]), 300)
        self.assertLess(len(conv[0]["prompt"]), 330)

    def test_output_lengths_are_capped_and_at_least_one(self):
        convs = parse(self.TRACE, max_tokens=16)
        self.assertEqual([c[0]["max_tokens"] for c in convs], [16, 3, 1])
        self.assertTrue(all(c[0]["kind"] == "completion" for c in convs))

    def test_same_seed_same_text(self):
        self.assertEqual(parse(self.TRACE), parse(self.TRACE))

    def test_limit(self):
        self.assertEqual(len(parse(self.TRACE, limit=2)), 2)

    def test_malformed_lines_name_their_line(self):
        with self.assertRaisesRegex(ValueError, "line 2"):
            parse('{"hash_ids": [1]}\n{"timestamp": 1}\n')
        with self.assertRaisesRegex(ValueError, "line 1"):
            parse("not json\n")


class SyntheticMooncake(unittest.TestCase):
    def test_round_trips_through_the_parser_with_shared_prefixes(self):
        records = traces.synthetic_mooncake(50, seed=3)
        self.assertEqual(len(records), 50)
        for r in records:
            self.assertEqual(set(r), {"timestamp", "input_length", "output_length", "hash_ids"})
            self.assertEqual(r["input_length"], 512 * len(r["hash_ids"]))
        times = [r["timestamp"] for r in records]
        self.assertEqual(times, sorted(times))
        text = "\n".join(json.dumps(r) for r in records)
        convs = parse(text, max_tokens=64)
        self.assertEqual(len(convs), 50)
        # Documents are shared: many requests start with the same first hash id.
        firsts = [r["hash_ids"][0] for r in records]
        self.assertLess(len(set(firsts)), 10)


class PeerCommands(unittest.TestCase):
    URLS = ["http://127.0.0.1:1", "http://127.0.0.1:2"]

    def test_every_peer_gets_cache_aware_its_port_and_every_worker(self):
        for name in peers.PEERS:
            argv = peers.command(name, "/v", 5000, 5001, self.URLS)
            self.assertEqual(argv[argv.index("--policy") + 1], "cache_aware", name)
            self.assertEqual(argv[argv.index("--port") + 1], "5000", name)
            self.assertEqual(argv[argv.index("--prometheus-port") + 1], "5001", name)
            i = argv.index("--worker-urls")
            self.assertEqual(argv[i + 1:i + 3], self.URLS, name)
            self.assertTrue(argv[0].startswith("/v/bin/"), name)

    def test_each_peer_runs_its_own_entry_point_and_log_level_spelling(self):
        sgl = peers.command("sglang-router", "/v", 1, 2, self.URLS)
        self.assertEqual(sgl[:3], ["/v/bin/python", "-m", "sglang_router.launch_router"])
        self.assertEqual(peers.command("smg", "/v", 1, 2, self.URLS)[:2], ["/v/bin/smg", "launch"])
        vllm = peers.command("vllm-router", "/v", 1, 2, self.URLS)
        self.assertEqual(vllm[0], "/v/bin/vllm-router")
        self.assertEqual(vllm[vllm.index("--log-level") + 1], "warning")
        self.assertEqual(sgl[sgl.index("--log-level") + 1], "warn")

    def test_requirements_are_pinned(self):
        for name in peers.PEERS:
            self.assertRegex(peers.requirement(name), r"^[a-z-]+==\d+\.\d+\.\d+$")

    def test_healthy_workers_reads_the_workers_listing(self):
        body = json.dumps({"workers": [{"url": "http://a", "is_healthy": True},
                                       {"url": "http://b", "is_healthy": False},
                                       {"url": 3, "is_healthy": True}, "junk"]})
        self.assertEqual(peers.healthy_workers(body), {"http://a"})
        self.assertEqual(peers.healthy_workers("not json"), set())
        self.assertEqual(peers.healthy_workers('{"workers": 5}'), set())
        self.assertEqual(peers.healthy_workers("[]"), set())


class Modes(unittest.TestCase):
    def test_split_and_check(self):
        self.assertEqual(experiment.split_mode("kv-approx@predict"), ("kv-approx", "predict"))
        self.assertEqual(experiment.split_mode("smg"), ("smg", None))
        experiment.check_modes(["kv-approx", "kv-events@new", "smg"], {"new": "/bin/x"})
        for bad, alts in ((["kv-aprox"], {}), (["kv-approx@new"], {}), (["smg@new"], {"new": "x"})):
            with self.assertRaises(SystemExit):
                experiment.check_modes(bad, alts)

    def test_ports_from_a_base_skip_ports_in_use(self):
        import socket
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            base = held.getsockname()[1]
            ports = experiment.Ports(base, span=3)
            got = ports.take()
            self.assertNotEqual(got, base)
            self.assertIn(got, range(base, base + 3))

    def test_slow_mockers_get_the_slow_factor(self):
        class A:
            bin, kv_blocks, block_size, ttft_ms, itl_ms, max_running = "sy", 96, 16, 2.0, 5.0, 8
            slow_mockers, slow_factor = 2, 3.0
        ttft = lambda i: experiment.mocker_argv(A, i, 1, None)[  # noqa: E731
            experiment.mocker_argv(A, i, 1, None).index("--ttft-ms") + 1]
        self.assertEqual([ttft(i) for i in range(4)], ["6.0", "6.0", "2.0", "2.0"])
        self.assertIn("--nats", experiment.mocker_argv(A, 0, 1, "nats://x"))


class Figures(unittest.TestCase):
    METRICS = ("# TYPE switchyard_mocker_prefix_cache_hits_total counter\n"
               "switchyard_mocker_prefix_cache_hits_total 30\n"
               "switchyard_mocker_prefill_blocks_total 10\n"
               "switchyard_mocker_requests_total 7\n"
               "switchyard_mocker_running 2\n")

    def test_mocker_counters(self):
        self.assertEqual(figures.parse_mocker_counters(self.METRICS),
                         {"hits": 30, "prefill": 10, "requests": 7})

    def test_run_figures_use_the_mockers_counters(self):
        results = ([{"ok": True, "ttft": t, "turn": n} for t, n in ((0.010, 1), (0.020, 0),
                                                                      (0.040, 1))]
                   + [{"ok": False, "turn": 0}])
        per_mocker = [{"hits": 30, "prefill": 10, "requests": 3},
                      {"hits": 0, "prefill": 20, "requests": 1}]
        r = figures.run_figures("smg", results, 2.0, per_mocker, 1, [1.0, 1.5])
        self.assertEqual((r["ok"], r["requests"]), (3, 4))
        self.assertAlmostEqual(r["ttft_mean_ms"], 70 / 3)
        self.assertAlmostEqual(r["hit_rate"], 0.5)
        self.assertEqual(r["per_worker"], [3, 1])
        self.assertEqual(r["spread_max_min"], 3.0)
        self.assertEqual(r["slow_share"], 0.75)
        self.assertAlmostEqual(r["throughput_rps"], 1.5)
        self.assertEqual(r["ttft_mean_by_turn_ms"], [20.0, 25.0])
        self.assertEqual(figures.spread([2, 0]), float("inf"))

    @staticmethod
    def row(mode, peer, mean, p99, rps, hit):
        return {"mode": mode, "peer": peer, "ttft_p50_ms": mean, "ttft_mean_ms": mean,
                "ttft_p99_ms": p99, "throughput_rps": rps, "hit_rate": hit,
                "spread_max_min": 1.0, "slow_share": None}

    def test_versus_best_peer_takes_the_best_peer_per_figure(self):
        results = [self.row("kv-approx", False, 10.0, 100.0, 50.0, 0.8),
                   self.row("sglang-router", True, 20.0, 130.0, 40.0, 0.9),
                   self.row("smg", True, 15.0, 200.0, 45.0, 0.7)]
        v = figures.versus_best_peer(results)
        self.assertEqual(list(v), ["kv-approx"])
        ratio = v["kv-approx"]["ratio"]
        self.assertAlmostEqual(ratio["ttft_mean_ms"], 1.5)      # smg's 15 / our 10
        self.assertAlmostEqual(ratio["ttft_p99_ms"], 1.3)       # sglang's 130 / our 100
        self.assertAlmostEqual(ratio["throughput_rps"], 50 / 45)
        self.assertAlmostEqual(ratio["hit_rate"], 0.8 / 0.9)
        self.assertEqual(v["kv-approx"]["best_peer"]["ttft_mean_ms"], "smg")
        self.assertEqual(figures.versus_best_peer(results[:1]), {})
        table = figures.markdown_table(results, v)
        self.assertIn("| kv-approx | 10.0 ms | 10.0 ms | 100.0 ms | 50.0 req/s | 0.800 | 1.00 | "
                      "1.50x, 1.30x |", table)
        self.assertEqual(len(table.splitlines()), 5)
        data = {"results": [dict(r, peer=r["peer"]) for r in results], "versus_best_peer": v,
                "floor": {"ttft_mean_ms": 8.0, "ttft_p99_ms": 90.0, "hit_rate": 0.95}}
        (row,) = report.summary_rows("256", data)
        self.assertTrue(row.startswith("| 256 | kv-approx | 10.0 ms (1.50x) | 100.0 ms (1.30x) |"))
        self.assertIn("15.0 (smg) / 130.0 (sglang-router) ms, 0.900 (sglang-router)", row)
        self.assertTrue(row.endswith("| 8.0 / 90 ms, 0.950 |"))


class GeneratedTrace(unittest.TestCase):
    @staticmethod
    def args(**kw):
        import argparse
        base = dict(seed=7, prefixes=8, system_bytes=100, user_bytes=20, assistant_bytes=20,
                    conversations=400, turns=1, max_tokens=4, zipf=0.0)
        base.update(kw)
        return argparse.Namespace(**base)

    @staticmethod
    def prefix_counts(convs):
        counts = {}
        for conv in convs:
            key = conv[0]["messages"][0]["content"].split("]")[0]
            counts[key] = counts.get(key, 0) + 1
        return sorted(counts.values(), reverse=True)

    def test_round_robin_spreads_prefixes_evenly(self):
        self.assertEqual(self.prefix_counts(traces.generated_trace(self.args())), [50] * 8)

    def test_zipf_makes_the_first_prefix_hot(self):
        counts = self.prefix_counts(traces.generated_trace(self.args(zipf=1.2)))
        self.assertEqual(sum(counts), 400)
        # Zipf(1.2) over 8 gives the top prefix ~42 % of the traffic.
        self.assertGreater(counts[0], 120)
        self.assertGreater(counts[0], 4 * counts[-1])


class Floor(unittest.TestCase):
    def test_rendered_chat_uses_the_default_template(self):
        turn = {"kind": "chat", "messages": [{"role": "system", "content": "S"},
                                             {"role": "user", "content": "U"}]}
        self.assertEqual(traces.rendered(turn), b"<|system|>\nS\n<|user|>\nU\n<|assistant|>\n")
        self.assertEqual(traces.rendered({"kind": "completion", "prompt": "p"}), b"p")

    def test_only_blocks_no_earlier_request_held_are_charged(self):
        a = {"kind": "completion", "prompt": "x" * 40}             # 4 full blocks of 10
        b = {"kind": "completion", "prompt": "x" * 30 + "y" * 25}  # shares 3, 2 new full blocks
        c = {"kind": "completion", "prompt": "z" * 5}             # no full block: charged one
        self.assertEqual(traces.ideal_blocks([[a, b], [c]], 10), [(4, 0), (5, 3), (0, 0)])
        f = traces.floor([[a, b], [c]], 10, 2.0)
        self.assertAlmostEqual(f["ttft_mean_ms"], (8.0 + 4.0 + 2.0) / 3)
        self.assertEqual((f["ttft_p50_ms"], f["ttft_p99_ms"]), (4.0, 8.0))
        self.assertAlmostEqual(f["hit_rate"], 3 / 9)
        # A block equal to a cached one but after a miss is not a prefix hit.
        d = {"kind": "completion", "prompt": "y" * 10 + "x" * 10}
        self.assertEqual(traces.ideal_blocks([[a], [d]], 10), [(4, 0), (2, 0)])


if __name__ == "__main__":
    unittest.main()
