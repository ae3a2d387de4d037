"""The mocker's chat features through a Switchyard frontend, seen by the official OpenAI
Python client: `n` choices, `stop` sequences, tool calls (chat, streamed and not) and a
Responses function-call round trip.

Usage: openai_mocker_features.py BASE_URL MODEL. Exits non-zero on the first mismatch.
"""
import json
import sys

from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
messages = [{"role": "user", "content": "tell me a story"}]

# n choices: indexes 0..n-1, deterministic, distinct.
c = client.chat.completions.create(model=model, messages=messages, max_tokens=6, n=3)
assert [ch.index for ch in c.choices] == [0, 1, 2], c.choices
texts = [ch.message.content for ch in c.choices]
assert len(set(texts)) == 3, texts
assert all(ch.finish_reason == "length" for ch in c.choices), c.choices
assert c.usage.completion_tokens == 18, c.usage
again = client.chat.completions.create(model=model, messages=messages, max_tokens=6, n=3)
assert [ch.message.content for ch in again.choices] == texts

# Streamed: the same choices, told apart by index.
streamed = {}
finishes = {}
for chunk in client.chat.completions.create(
    model=model, messages=messages, max_tokens=6, n=3, stream=True
):
    for ch in chunk.choices:
        streamed[ch.index] = streamed.get(ch.index, "") + (ch.delta.content or "")
        if ch.finish_reason:
            finishes[ch.index] = ch.finish_reason
assert [streamed[i] for i in range(3)] == texts, (streamed, texts)
assert finishes == {0: "length", 1: "length", 2: "length"}, finishes

# A stop sequence: the text ends before it, finish_reason "stop".
words = texts[0].split()
stop = " " + words[3]
cut = texts[0][: texts[0].index(stop)]
s = client.chat.completions.create(model=model, messages=messages, max_tokens=6, stop=[stop])
assert s.choices[0].message.content == cut, (s.choices[0].message.content, cut)
assert s.choices[0].finish_reason == "stop", s.choices[0]

# The completions route takes `n` and `stop` too (a migrated chat stream continues there).
full = client.completions.create(model=model, prompt="once upon a time", max_tokens=6)
ctext = full.choices[0].text
cstop = " " + ctext.split()[2]
cc = client.completions.create(
    model=model, prompt="once upon a time", max_tokens=6, n=2, stop=cstop
)
assert [ch.index for ch in cc.choices] == [0, 1], cc.choices
assert cc.choices[0].text == ctext[: ctext.index(cstop)], (cc.choices[0].text, ctext)
assert cc.choices[0].finish_reason == "stop", cc.choices[0]

# Tool calls on the chat route.
weather = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
t = client.chat.completions.create(
    model=model, messages=messages, tools=[weather], tool_choice="required"
)
call = t.choices[0].message.tool_calls[0]
assert t.choices[0].finish_reason == "tool_calls", t.choices[0]
assert call.function.name == "get_weather", call
args = json.loads(call.function.arguments)
assert isinstance(args["city"], str) and isinstance(args["days"], int), args
pieces, names = [], []
for chunk in client.chat.completions.create(
    model=model, messages=messages, tools=[weather], tool_choice="required", stream=True
):
    for ch in chunk.choices:
        for tc in ch.delta.tool_calls or []:
            pieces.append(tc.function.arguments or "")
            if tc.function.name:
                names.append(tc.function.name)
        if ch.finish_reason:
            assert ch.finish_reason == "tool_calls", ch
assert names == ["get_weather"] and "".join(pieces) == call.function.arguments, pieces

# A Responses function-call round trip: the model calls the tool, its output goes back in.
tools = [{"type": "function", "name": weather["function"]["name"],
          "parameters": weather["function"]["parameters"]}]
r = client.responses.create(
    model=model, input="weather in Oslo?", tools=tools, tool_choice="required"
)
fc = [item for item in r.output if item.type == "function_call"]
assert len(fc) == 1 and fc[0].name == "get_weather", r.output
assert isinstance(json.loads(fc[0].arguments)["city"], str), fc[0].arguments
events = list(
    client.responses.create(
        model=model, input="weather in Oslo?", tools=tools, tool_choice="required", stream=True
    )
)
done = [e for e in events if e.type == "response.function_call_arguments.done"]
assert len(done) == 1 and done[0].arguments == fc[0].arguments, [e.type for e in events]
answer = client.responses.create(
    model=model,
    tools=tools,
    input=[
        {"role": "user", "content": "weather in Oslo?"},
        {"type": "function_call", "call_id": fc[0].call_id, "name": fc[0].name,
         "arguments": fc[0].arguments},
        {"type": "function_call_output", "call_id": fc[0].call_id, "output": "sunny"},
    ],
    max_output_tokens=4,
)
assert answer.output[0].type == "message" and len(answer.output_text.split()) == 4, answer

# logprobs: one entry per token, whole and streamed alike, with the asked-for alternatives.
lp = client.chat.completions.create(
    model=model, messages=messages, max_tokens=5, logprobs=True, top_logprobs=3
)
entries = lp.choices[0].logprobs.content
assert "".join(e.token for e in entries) == lp.choices[0].message.content == texts[0][: len(lp.choices[0].message.content)], entries
assert len(entries) == 5 and all(len(e.top_logprobs) == 3 and e.logprob <= 0 for e in entries)
streamed_tokens = []
for chunk in client.chat.completions.create(
    model=model, messages=messages, max_tokens=5, logprobs=True, top_logprobs=3, stream=True
):
    for ch in chunk.choices:
        if ch.logprobs and ch.logprobs.content:
            streamed_tokens += [(e.token, e.logprob) for e in ch.logprobs.content]
assert streamed_tokens == [(e.token, e.logprob) for e in entries], streamed_tokens

# JSON output: chat `response_format` and Responses `text.format` answer a JSON object
# with the schema's required properties.
schema = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "pages": {"type": "integer"}},
    "required": ["title", "pages"],
}
j = client.chat.completions.create(
    model=model,
    messages=messages,
    response_format={"type": "json_schema", "json_schema": {"name": "book", "schema": schema}},
)
book = json.loads(j.choices[0].message.content)
assert isinstance(book["title"], str) and isinstance(book["pages"], int), book
assert j.choices[0].finish_reason == "stop", j.choices[0]
r = client.responses.create(
    model=model,
    input="a book please",
    text={"format": {"type": "json_schema", "name": "book", "schema": schema}},
)
assert r.status == "completed", r.status
assert json.loads(r.output_text).keys() == {"title", "pages"}, r.output_text

print("ALL OK")
