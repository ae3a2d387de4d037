"""Checks of the routing experiment's trace parsers: `python3 -m unittest benches/kv_routing/test_experiment.py`."""
import io
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import experiment  # noqa: E402


def parse(text, **kw):
    opts = {"seed": 7, "block_bytes": 100, "max_tokens": 16}
    opts.update(kw)
    return experiment.parse_mooncake(io.StringIO(text), **opts)


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
        records = experiment.synthetic_mooncake(50, seed=3)
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


if __name__ == "__main__":
    unittest.main()
