"""Tool use through a Switchyard frontend's Messages API, seen by the official Anthropic
Python client: the mocker answers a forced tool choice with a call, which the frontend
translates into a `tool_use` block (whole, and streamed as `input_json_delta`s).

Usage: anthropic_tool_use.py BASE_URL MODEL. Exits non-zero on the first mismatch.
"""
import sys

from anthropic import Anthropic

base_url, model = sys.argv[1], sys.argv[2]
client = Anthropic(base_url=base_url, api_key="unused", max_retries=0)

tools = [
    {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
]
request = dict(
    model=model,
    max_tokens=64,
    tools=tools,
    tool_choice={"type": "tool", "name": "get_weather"},
    messages=[{"role": "user", "content": "weather in Oslo?"}],
)

m = client.messages.create(**request)
assert m.stop_reason == "tool_use", m
uses = [b for b in m.content if b.type == "tool_use"]
assert len(uses) == 1 and uses[0].name == "get_weather", m.content
assert isinstance(uses[0].input["city"], str) and isinstance(uses[0].input["days"], int), uses[0]
assert uses[0].id, uses[0]

# Streamed through the SDK's helper: the same call, assembled from input_json_delta events.
with client.messages.stream(**request) as stream:
    kinds = [e.type for e in stream]
    final = stream.get_final_message()
assert final.stop_reason == "tool_use", final
streamed = [b for b in final.content if b.type == "tool_use"]
assert len(streamed) == 1 and streamed[0].input == uses[0].input, (streamed, uses)
assert "input_json" in kinds, kinds

# `any`: the first tool is called.
a = client.messages.create(**{**request, "tool_choice": {"type": "any"}})
assert a.stop_reason == "tool_use" and a.content[-1].name == "noop", a.content

print("ALL OK")
