"""The load harness's case table and its translated-vs-chat ratios (no processes)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Cases(unittest.TestCase):
    def test_translated_cases_stream_sixteen_tokens_on_their_own_routes(self):
        table = {name: (path, body, direct) for name, path, body, direct in harness.cases()}
        self.assertEqual(list(table), ["non-stream", "stream-16", "messages-16", "responses-16"])
        path, body, direct = table["messages-16"]
        self.assertEqual(path, "/v1/messages")
        self.assertEqual((body["max_tokens"], body["stream"]), (16, True))
        self.assertEqual(body["messages"], [{"role": "user", "content": "hello there"}])
        path, body, direct = table["responses-16"]
        self.assertEqual(path, "/v1/responses")
        self.assertEqual((body["max_output_tokens"], body["stream"], body["input"]),
                         (16, True, "hello there"))
        # Directly, the mocker gets the chat stream the frontend sends it.
        self.assertEqual(direct, table["stream-16"][1])
        self.assertEqual(table["stream-16"][0], harness.CHAT)

    def test_translated_cpu_is_a_ratio_of_the_chat_stream_at_the_same_concurrency(self):
        rows = [
            {"case": "non-stream", "c": 64, "cpu_us": 30.0},
            {"case": "stream-16", "c": 1, "cpu_us": 100.0},
            {"case": "stream-16", "c": 64, "cpu_us": 60.0},
            {"case": "messages-16", "c": 64, "cpu_us": 66.0},
            {"case": "responses-16", "c": 64, "cpu_us": 75.0},
            {"case": "responses-16", "c": 1, "cpu_us": 110.0},
        ]
        got = {(r["case"], r["c"]): round(r["ratio"], 3) for r in harness.over_stream(rows)}
        self.assertEqual(got, {("messages-16", 64): 1.1, ("responses-16", 64): 1.25,
                               ("responses-16", 1): 1.1})

    def test_no_ratio_without_the_chat_stream(self):
        rows = [{"case": "messages-16", "c": 64, "cpu_us": 66.0}]
        self.assertEqual(harness.over_stream(rows), [])


if __name__ == "__main__":
    unittest.main()
