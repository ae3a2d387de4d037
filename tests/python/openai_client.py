"""Drive a Switchyard frontend with the official OpenAI Python client.

Usage: openai_client.py BASE_URL MODEL. Exits non-zero on the first mismatch.
"""
import sys

import openai
from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)

models = [m.id for m in client.models.list()]
assert model in models, models

chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=8
)
text = chat.choices[0].message.content
assert chat.choices[0].message.role == "assistant"
assert len(text.split()) == 8, text
assert chat.usage.completion_tokens == 8

stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "hello"}],
    max_tokens=8,
    stream=True,
    stream_options={"include_usage": True},
)
parts, usage = [], None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        parts.append(choice.delta.content or "")
assert "".join(parts) == text, ("".join(parts), text)
assert usage is not None and usage.completion_tokens == 8, usage

completion = client.completions.create(model=model, prompt="once upon", max_tokens=4)
assert len(completion.choices[0].text.split()) == 4

embedding = client.embeddings.create(model=model, input=["a", "b"])
assert len(embedding.data) == 2 and len(embedding.data[0].embedding) > 0

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("expected NotFoundError")
except openai.NotFoundError as e:
    assert e.status_code == 404
    assert e.body["code"] == "model_not_found", e.body

try:
    client.chat.completions.create(model=model, messages=[])
    raise SystemExit("expected BadRequestError")
except openai.BadRequestError as e:
    assert e.status_code == 400

print("ALL OK")
