"""Drive a Switchyard frontend's Messages API with the official Anthropic Python client.

Usage: anthropic_client.py BASE_URL MODEL. Exits non-zero on the first mismatch. The mocker
always stops at the output budget, so `stop_reason` is `max_tokens`.
"""
import sys

import anthropic
from anthropic import Anthropic

base_url, model = sys.argv[1], sys.argv[2]
# The SDK sends `x-api-key` and `anthropic-version`; the frontend accepts both.
client = Anthropic(base_url=base_url, api_key="unused", max_retries=0)

m = client.messages.create(
    model=model,
    max_tokens=8,
    system="be brief",
    messages=[{"role": "user", "content": "hello"}],
)
assert m.type == "message" and m.role == "assistant", m
assert m.stop_reason == "max_tokens", m.stop_reason
assert m.content[0].type == "text", m.content
text = m.content[0].text
assert len(text.split()) == 8, text
assert m.usage.output_tokens == 8 and m.usage.input_tokens > 0, m.usage

# Streamed through the SDK's stream helper: the same text and usage.
with client.messages.stream(
    model=model,
    max_tokens=8,
    system="be brief",
    messages=[{"role": "user", "content": "hello"}],
) as stream:
    streamed = "".join(stream.text_stream)
    final = stream.get_final_message()
assert streamed == text, (streamed, text)
assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 8, final
assert final.usage.input_tokens == m.usage.input_tokens, final.usage

# The raw event sequence.
events = list(
    client.messages.create(
        model=model,
        max_tokens=3,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )
)
types = [e.type for e in events]
assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"], types
assert types[1] == "content_block_start" and "content_block_stop" in types, types

# A tool round trip: the assistant's tool_use and the user's tool_result go back in.
m = client.messages.create(
    model=model,
    max_tokens=4,
    tools=[
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ],
    messages=[
        {"role": "user", "content": "weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
        },
    ],
)
assert len(m.content[0].text.split()) == 4, m.content

# Errors arrive in Anthropic's shape, so the SDK raises its typed exceptions.
try:
    client.messages.create(
        model="no-such-model", max_tokens=4, messages=[{"role": "user", "content": "hi"}]
    )
    raise AssertionError("unknown model accepted")
except anthropic.NotFoundError as e:
    assert e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error", e.body

for bad in [
    {"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]},
    {"max_tokens": 4, "messages": [{"role": "bogus", "content": "hi"}]},
    {
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "hi"}],
        "extra_body": {"temperature": 3},
    },
]:
    try:
        client.messages.create(model=model, **bad)
        raise AssertionError(f"{bad} was accepted")
    except anthropic.BadRequestError as e:
        assert e.body["error"]["type"] == "invalid_request_error", e.body

print("ALL OK")
