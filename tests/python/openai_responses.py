"""Drive a Switchyard frontend's Responses API with the official OpenAI Python client.

Usage: openai_responses.py BASE_URL MODEL. Exits non-zero on the first mismatch. The mocker
always stops at the output budget, so every response is `incomplete` for
`max_output_tokens`, as OpenAI reports it.
"""
import sys

import openai
from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)

# Non-streamed, with instructions.
r = client.responses.create(
    model=model, instructions="be brief", input="hello", max_output_tokens=8
)
assert r.object == "response", r
assert r.status == "incomplete", r.status
assert r.incomplete_details.reason == "max_output_tokens", r.incomplete_details
assert r.output[0].type == "message" and r.output[0].role == "assistant", r.output
text = r.output_text
assert len(text.split()) == 8, text
assert r.usage.output_tokens == 8 and r.usage.input_tokens > 0, r.usage
assert r.usage.total_tokens == r.usage.input_tokens + 8, r.usage

# Streamed: the same text, as the full Responses event sequence.
stream = client.responses.create(
    model=model, instructions="be brief", input="hello", max_output_tokens=8, stream=True
)
events = list(stream)
types = [e.type for e in events]
assert types[:4] == [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
], types
assert types[-4:] == [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.incomplete",
], types
assert [e.sequence_number for e in events] == list(range(len(events)))
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert deltas == text, (deltas, text)
final = events[-1].response
assert final.output_text == text and final.usage.output_tokens == 8, final

# A function tool round trip: the call the model made and its output go back as input.
tools = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
r = client.responses.create(
    model=model,
    tools=tools,
    input=[
        {"role": "user", "content": [{"type": "input_text", "text": "weather in Oslo?"}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ],
    max_output_tokens=4,
)
assert len(r.output_text.split()) == 4, r.output_text
assert r.tools[0].name == "get_weather", r.tools

# Stateless: a request that needs a response store is refused by name.
for kwargs, param in [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
]:
    try:
        client.responses.create(model=model, input="hi", **kwargs)
        raise AssertionError(f"{kwargs} was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == param, e.body

try:
    client.responses.create(model="no-such-model", input="hi")
    raise AssertionError("unknown model accepted")
except openai.NotFoundError:
    pass

print("ALL OK")
