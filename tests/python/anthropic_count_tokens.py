"""Count tokens through a Switchyard frontend with the official Anthropic Python client.

Usage: anthropic_count_tokens.py BASE_URL MODEL. The frontend and its mocker load the same
tokenizer, so the count must equal the `input_tokens` the served message reports.
"""
import sys

import anthropic
from anthropic import Anthropic

base_url, model = sys.argv[1], sys.argv[2]
client = Anthropic(base_url=base_url, api_key="unused", max_retries=0)

conversation = dict(
    system="be brief",
    messages=[
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "count me"}]},
    ],
)
counted = client.messages.count_tokens(model=model, **conversation)
assert counted.input_tokens > 0, counted
served = client.messages.create(model=model, max_tokens=2, **conversation)
assert served.usage.input_tokens == counted.input_tokens, (served.usage, counted)

# A longer conversation counts more tokens.
longer = client.messages.count_tokens(
    model=model,
    system="be brief",
    messages=conversation["messages"] + [{"role": "assistant", "content": "ok, counting"}],
)
assert longer.input_tokens > counted.input_tokens, (longer, counted)

# An unknown model and a malformed request raise the SDK's typed errors.
try:
    client.messages.count_tokens(model="no-such-model", messages=conversation["messages"])
    raise AssertionError("unknown model was counted")
except anthropic.NotFoundError as e:
    assert e.body["error"]["type"] == "not_found_error", e.body
try:
    client.messages.count_tokens(model=model, messages=[{"role": "bogus", "content": "x"}])
    raise AssertionError("bad role was counted")
except anthropic.BadRequestError as e:
    assert e.body["error"]["type"] == "invalid_request_error", e.body

print("ALL OK")
