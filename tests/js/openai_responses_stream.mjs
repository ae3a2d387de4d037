// Streams a Responses request through a Switchyard frontend with the official `openai` npm
// client, as Codex-style TypeScript agents do.
//
// Usage: node openai_responses_stream.mjs BASE_URL MODEL. Exits non-zero on the first
// mismatch; prints "ALL OK" when every check passed.
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });

// The same request whole and streamed: the stream's deltas add up to the whole text.
const request = { model, instructions: "be brief", input: "hello", max_output_tokens: 8 };
const whole = await client.responses.create(request);
assert.equal(whole.output_text.trim().split(/\s+/).length, 8, whole.output_text);

const stream = await client.responses.create({ ...request, stream: true });
const events = [];
for await (const event of stream) events.push(event);
const types = events.map((e) => e.type);
assert.deepEqual(types.slice(0, 2), ["response.created", "response.in_progress"], types.join());
assert.equal(types.at(-1), "response.incomplete", types.join());
assert.deepEqual(
  events.map((e) => e.sequence_number),
  events.map((_, i) => i),
);
const deltas = events
  .filter((e) => e.type === "response.output_text.delta")
  .map((e) => e.delta)
  .join("");
assert.equal(deltas, whole.output_text);
const final = events.at(-1).response;
assert.equal(final.usage.output_tokens, 8);
assert.equal(final.incomplete_details.reason, "max_output_tokens");

// The SDK's stream helper assembles the final response from the same events.
const helper = client.responses.stream(request);
let helped = "";
helper.on("response.output_text.delta", (e) => {
  helped += e.delta;
});
const assembled = await helper.finalResponse();
assert.equal(helped, whole.output_text);
// (The helper's final response is its snapshot of the items it assembled; it only takes
// the server's status from a `response.completed` event, and this one ends incomplete.)
assert.equal(assembled.output[0].content[0].text, whole.output_text);

// A function call streams as function_call_arguments events.
const tools = [{
  type: "function",
  name: "get_weather",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
}];
const calls = [];
for await (const event of await client.responses.create({
  model, input: "weather in Oslo?", tools, tool_choice: "required", stream: true,
})) {
  if (event.type === "response.function_call_arguments.done") calls.push(event.arguments);
}
assert.equal(calls.length, 1);
assert.equal(typeof JSON.parse(calls[0]).city, "string");

console.log("ALL OK");
