"""Tenants through the official OpenAI Python client: its typed errors must be raised.

Usage: tenants_client.py BASE_URL MODEL. The frontend's tenants (see tests/it/tenants.rs):
`sk-limited` may use `mock-*` with a burst of 2 requests, `sk-other` only `other-*`.
Exits non-zero on the first mismatch.
"""
import sys

import openai
from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]


def client(key):
    # No retries: the client would otherwise retry 429s itself, honouring Retry-After.
    return OpenAI(base_url=base_url, api_key=key, max_retries=0)


def chat(c):
    return c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )


try:
    chat(client("sk-wrong"))
    raise SystemExit("unknown key was served")
except openai.AuthenticationError as e:
    assert e.status_code == 401, e.status_code
    assert e.code == "invalid_api_key", e.body

try:
    chat(client("sk-other"))
    raise SystemExit("model outside the tenant's list was served")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e.body
assert [m.id for m in client("sk-other").models.list()] == []

limited = client("sk-limited")
assert model in [m.id for m in limited.models.list()]
first = chat(limited)
assert first.headers["x-ratelimit-limit-requests"] == "2", first.headers
assert first.headers["x-ratelimit-remaining-requests"] == "1", first.headers
assert first.headers["x-ratelimit-reset-requests"].endswith("s"), first.headers
assert first.parse().choices[0].message.content
second = chat(limited)
assert second.headers["x-ratelimit-remaining-requests"] == "0", second.headers
try:
    chat(limited)
    raise SystemExit("third request within the burst of 2 was served")
except openai.RateLimitError as e:
    assert e.code == "rate_limit_exceeded", e.body
    assert e.type == "requests", e.body
    assert int(e.response.headers["retry-after"]) >= 1, e.response.headers
    assert e.response.headers["x-ratelimit-remaining-requests"] == "0"

print("ALL OK")
