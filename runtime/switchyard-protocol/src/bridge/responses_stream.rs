//! A chat chunk stream rewritten as the Responses event stream:
//!
//! `response.created`, `response.in_progress`, then per output item
//! `response.output_item.added`, (text) `response.content_part.added`,
//! `response.output_text.delta`*, `response.output_text.done`, `response.content_part.done`,
//! or (function call) `response.function_call_arguments.delta`*,
//! `response.function_call_arguments.done`; then `response.output_item.done`; and finally
//! `response.completed` (or `response.incomplete` when the output limit cut it short).
//! A stream that fails after it started ends with `response.failed`. Every event carries
//! its `sequence_number` and an SSE `event:` line naming its type.

use bytes::BytesMut;

use super::chat_out::ToolCallDelta;
use super::chunk_scan::ChunkScanner;
use super::response_json::{Fields, ResponseJson};
use super::responses_reply::{status_for, ResponseHead};
use super::{
    json_str, new_id, put_json_str, put_u64, responses_text_events, write_event, StreamBridge,
};
use crate::responses::{
    ArgumentsDeltaEvent, ArgumentsDoneEvent, OutputItem, OutputItemEvent, ResponseError,
    ResponseUsage, ResponsesRequest,
};
use crate::Usage;

/// The stream's phase: nothing sent yet, events flowing, or ended (completed or failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Fresh,
    Open,
    Finished,
}

/// The message item being streamed.
#[derive(Debug)]
struct OpenText {
    /// The item id as a JSON string, written into every delta event without re-escaping it.
    id_json: String,
    text: String,
}

/// The function call item being streamed; `chat_index` is its index among the chat
/// chunk's `tool_calls`.
#[derive(Debug)]
struct OpenCall {
    chat_index: u32,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

#[derive(Debug)]
pub struct ResponsesStream {
    /// The parts of the `response` object every lifecycle event repeats, serialized once.
    head: ResponseJson,
    phase: Phase,
    seq: u64,
    /// The closed output items as JSON, comma-separated (the final object's `output`); the
    /// open one (if any) has index `items`.
    output: BytesMut,
    items: usize,
    text: Option<OpenText>,
    call: Option<OpenCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    scanner: ChunkScanner,
}

impl ResponsesStream {
    pub fn new(request: &ResponsesRequest) -> Self {
        Self::with_head(ResponseHead::new(request))
    }

    pub fn with_head(head: ResponseHead) -> Self {
        Self {
            head: ResponseJson::new(&head),
            phase: Phase::Fresh,
            seq: 0,
            output: BytesMut::new(),
            items: 0,
            text: None,
            call: None,
            finish_reason: None,
            usage: None,
            scanner: ChunkScanner::default(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    /// A lifecycle event (`response.created`, `.completed`, ...) carrying the `response`
    /// object with `fields`.
    fn lifecycle(&mut self, out: &mut BytesMut, kind: &str, fields: Fields<'_>) {
        let sequence_number = self.next_seq();
        write_lifecycle(out, kind, sequence_number, |out| {
            self.head.write(out, fields)
        });
    }

    /// `response.created` and `response.in_progress`: the response head, in progress.
    fn start(&mut self, out: &mut BytesMut) {
        if self.phase != Phase::Fresh {
            return;
        }
        self.phase = Phase::Open;
        for kind in ["response.created", "response.in_progress"] {
            self.lifecycle(out, kind, Fields::in_progress());
        }
    }

    fn text_delta(&mut self, delta: &str, out: &mut BytesMut) {
        if self.call.is_some() {
            self.close_call(out);
        }
        let output_index = self.items;
        if self.text.is_none() {
            let id = new_id("msg_");
            let id_json = json_str(&id);
            let seq = self.next_seq();
            self.next_seq();
            responses_text_events::write_opened(out, seq, output_index, &id_json);
            self.text = Some(OpenText {
                id_json,
                text: String::new(),
            });
        }
        let sequence_number = self.next_seq();
        let Some(text) = &mut self.text else { return };
        text.text.push_str(delta);
        write_text_delta(out, sequence_number, &text.id_json, output_index, delta);
    }

    /// Starts the next item's JSON in `output`; where it starts.
    fn next_item(&mut self) -> usize {
        if self.items > 0 {
            self.output.extend_from_slice(b",");
        }
        self.items += 1;
        self.output.len()
    }

    fn close_text(&mut self, out: &mut BytesMut) {
        let Some(text) = self.text.take() else { return };
        let output_index = self.items;
        // The whole text is escaped once and written into all four places.
        let text_json = json_str(&text.text);
        let seq = self.next_seq();
        self.seq += 2;
        let at = self.next_item();
        responses_text_events::write_message_item(&mut self.output, &text.id_json, &text_json);
        let item = &self.output[at..];
        let strings = (text.id_json.as_str(), text_json.as_str());
        responses_text_events::write_closed(out, seq, output_index, strings, item);
    }

    fn tool_call_delta(&mut self, delta: &ToolCallDelta<'_>, out: &mut BytesMut) {
        if self
            .call
            .as_ref()
            .is_some_and(|c| c.chat_index != delta.index)
        {
            self.close_call(out);
        }
        if self.text.is_some() {
            self.close_text(out);
        }
        let output_index = self.items;
        let function = delta.function.as_ref();
        if self.call.is_none() {
            let call = OpenCall {
                chat_index: delta.index,
                id: new_id("fc_"),
                call_id: delta.id.clone().unwrap_or_else(|| new_id("call_")),
                name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                arguments: String::new(),
            };
            let item = OutputItem::FunctionCall {
                id: call.id.clone(),
                call_id: call.call_id.clone(),
                name: call.name.clone(),
                arguments: String::new(),
                status: "in_progress",
            };
            let kind = "response.output_item.added";
            let event = OutputItemEvent {
                kind,
                sequence_number: self.next_seq(),
                output_index,
                item: &item,
            };
            write_event(out, kind, &event);
            self.call = Some(call);
        }
        let Some(arguments) = function
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let sequence_number = self.next_seq();
        let Some(call) = &mut self.call else { return };
        call.arguments.push_str(arguments);
        let kind = "response.function_call_arguments.delta";
        let event = ArgumentsDeltaEvent {
            kind,
            sequence_number,
            item_id: &call.id,
            output_index,
            delta: arguments,
        };
        write_event(out, kind, &event);
    }

    fn close_call(&mut self, out: &mut BytesMut) {
        let Some(call) = self.call.take() else { return };
        let output_index = self.items;
        let kind = "response.function_call_arguments.done";
        let event = ArgumentsDoneEvent {
            kind,
            sequence_number: self.next_seq(),
            item_id: &call.id,
            output_index,
            name: &call.name,
            arguments: &call.arguments,
        };
        write_event(out, kind, &event);
        let item = OutputItem::FunctionCall {
            id: call.id,
            call_id: call.call_id,
            name: call.name,
            arguments: call.arguments,
            status: "completed",
        };
        let kind = "response.output_item.done";
        let event = OutputItemEvent {
            kind,
            sequence_number: self.next_seq(),
            output_index,
            item: &item,
        };
        write_event(out, kind, &event);
        let at = self.next_item();
        if serde_json::to_writer(bytes::BufMut::writer(&mut self.output), &item).is_err() {
            self.output.truncate(at); // not reachable: strings only
        }
    }

    fn close_items(&mut self, out: &mut BytesMut) {
        self.close_text(out);
        self.close_call(out);
    }

    fn usage(&self) -> Option<ResponseUsage> {
        self.usage
            .map(|u| ResponseUsage::new(u.prompt_tokens, u.completion_tokens))
    }
}

/// `response.output_text.delta` written directly, as [`TextDeltaEvent`] serializes (the
/// test checks byte equality): the one event per token, where generic serialization —
/// escaping the constant type name and item id again for every token — was most of the
/// bridge's encoding cost.
fn write_text_delta(
    out: &mut BytesMut,
    sequence_number: u64,
    item_id_json: &str,
    output_index: usize,
    delta: &str,
) {
    out.extend_from_slice(
        b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":",
    );
    put_u64(out, sequence_number);
    out.extend_from_slice(b",\"item_id\":");
    out.extend_from_slice(item_id_json.as_bytes());
    out.extend_from_slice(b",\"output_index\":");
    put_u64(out, output_index as u64);
    out.extend_from_slice(b",\"content_index\":0,\"delta\":");
    put_json_str(out, delta);
    out.extend_from_slice(b",\"logprobs\":[]}\n\n");
}

/// A lifecycle event around the `response` object `response` writes, with the fields in
/// [`crate::responses::LifecycleEvent`]'s order.
fn write_lifecycle(
    out: &mut BytesMut,
    kind: &str,
    sequence_number: u64,
    response: impl FnOnce(&mut BytesMut),
) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    put_u64(out, sequence_number);
    out.extend_from_slice(b",\"response\":");
    response(out);
    out.extend_from_slice(b"}\n\n");
}

impl StreamBridge for ResponsesStream {
    fn chunk(&mut self, data: &[u8], out: &mut BytesMut) {
        if self.phase == Phase::Finished {
            return;
        }
        let chunk = match super::read_chunk(&mut self.scanner, data) {
            Ok(chunk) => chunk,
            Err(message) => return self.failed(&message, out),
        };
        self.start(out);
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        // The bridge asks for one choice; anything else the worker sends is not the answer.
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                self.text_delta(text, out);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                self.tool_call_delta(call, out);
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.to_string());
                self.close_items(out);
            }
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        if self.phase == Phase::Finished {
            return;
        }
        self.start(out);
        self.close_items(out);
        self.phase = Phase::Finished;
        let (status, incomplete) = status_for(self.finish_reason.as_deref());
        let usage = self.usage();
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let output = std::mem::take(&mut self.output);
        let fields = Fields {
            status,
            error: None,
            incomplete: incomplete.as_ref(),
            output: &output,
            usage: usage.as_ref(),
        };
        self.lifecycle(out, kind, fields);
    }

    fn failed(&mut self, message: &str, out: &mut BytesMut) {
        if self.phase == Phase::Finished {
            return;
        }
        self.start(out);
        self.phase = Phase::Finished;
        let usage = self.usage();
        let error = ResponseError {
            code: "server_error",
            message: message.to_owned(),
        };
        let output = std::mem::take(&mut self.output);
        let fields = Fields {
            status: "failed",
            error: Some(&error),
            incomplete: None,
            output: &output,
            usage: usage.as_ref(),
        };
        self.lifecycle(out, "response.failed", fields);
    }

    fn finished(&self) -> bool {
        self.phase == Phase::Finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::{LifecycleEvent, TextDeltaEvent};
    use serde_json::{json, Value};

    /// Parses written SSE back into (event name, data) pairs.
    pub(crate) fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str(), "event line names the type");
                (name, data)
            })
            .collect()
    }

    fn stream() -> ResponsesStream {
        ResponsesStream::new(&serde_json::from_value(json!({"model":"m","input":"hi"})).unwrap())
    }

    fn text_chunk(text: &str, finish: Option<&str>) -> Vec<u8> {
        json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":{"content":text},"finish_reason":finish}]})
        .to_string()
        .into_bytes()
    }

    const USAGE: &[u8] = br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;

    #[test]
    fn a_directly_written_text_delta_is_byte_for_byte_the_serialized_one() {
        for delta in ["plain", "quote \" back\\slash\nnew line \u{1} é 😀"] {
            let mut expected = BytesMut::new();
            let event = TextDeltaEvent {
                kind: "response.output_text.delta",
                sequence_number: 12,
                item_id: "msg_1\"x",
                output_index: 3,
                content_index: 0,
                delta,
                logprobs: [],
            };
            write_event(&mut expected, "response.output_text.delta", &event);
            let mut written = BytesMut::new();
            let id = serde_json::to_string("msg_1\"x").unwrap();
            write_text_delta(&mut written, 12, &id, 3, delta);
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn a_spliced_lifecycle_event_is_byte_for_byte_the_serialized_one() {
        let head =
            ResponseHead::new(&serde_json::from_value(json!({"model":"m","input":"hi"})).unwrap());
        let response = head.object("in_progress", Vec::new(), None);
        let mut expected = BytesMut::new();
        let event = LifecycleEvent {
            kind: "response.created",
            sequence_number: 7,
            response: &response,
        };
        write_event(&mut expected, "response.created", &event);
        let mut written = BytesMut::new();
        let json = ResponseJson::new(&head);
        write_lifecycle(&mut written, "response.created", 7, |out| {
            json.write(out, Fields::in_progress())
        });
        assert_eq!(written, expected);
    }

    #[test]
    fn a_text_stream_has_the_full_event_sequence_in_order() {
        let mut s = stream();
        let mut out = BytesMut::new();
        s.event(&text_chunk("Hel", None), &mut out);
        s.event(&text_chunk("lo", Some("stop")), &mut out);
        s.event(USAGE, &mut out);
        s.event(b"[DONE]", &mut out);
        assert!(s.finished());
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i as u64);
        }
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[6].1["text"], "Hello");
        let done = &events[9].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["input_tokens"], 5);
        assert_eq!(done["usage"]["output_tokens"], 2);
        assert_eq!(events[4].1["item_id"], events[2].1["item"]["id"]);
    }

    #[test]
    fn tool_call_deltas_become_function_call_items() {
        let mut s = stream();
        let mut out = BytesMut::new();
        let call = |delta: Value, finish: Option<&str>| {
            json!({"choices":[{"index":0,"delta":{"tool_calls":[delta]},"finish_reason":finish}]})
                .to_string()
                .into_bytes()
        };
        s.event(&text_chunk("Let me check.", None), &mut out);
        s.event(&call(json!({"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":""}}), None), &mut out);
        s.event(
            &call(json!({"index":0,"function":{"arguments":"{\"a\""}}), None),
            &mut out,
        );
        s.event(
            &call(
                json!({"index":0,"function":{"arguments":":1}"}}),
                Some("tool_calls"),
            ),
            &mut out,
        );
        s.event(b"[DONE]", &mut out);
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            &names[7..],
            [
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(events[8].1["output_index"], 1);
        assert_eq!(events[8].1["item"]["call_id"], "call_1");
        assert_eq!(events[11].1["arguments"], "{\"a\":1}");
        assert_eq!(events[11].1["name"], "get");
        let output = &events[13].1["response"]["output"];
        assert_eq!(output[1]["type"], "function_call");
        assert_eq!(output[1]["arguments"], "{\"a\":1}");
    }

    #[test]
    fn a_failure_after_the_start_ends_with_response_failed() {
        let mut s = stream();
        let mut out = BytesMut::new();
        s.event(&text_chunk("Hel", None), &mut out);
        s.event(br#"{"error":{"message":"worker died","type":"upstream_error","param":null,"code":"stream_interrupted"}}"#, &mut out);
        s.event(b"[DONE]", &mut out);
        let events = events(&out);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(data["response"]["error"]["message"], "worker died");
        assert!(s.finished());
    }

    #[test]
    fn a_length_stop_ends_incomplete_and_garbage_fails() {
        let mut s = stream();
        let mut out = BytesMut::new();
        s.event(&text_chunk("a", Some("length")), &mut out);
        s.event(b"[DONE]", &mut out);
        let events = events(&out);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(
            data["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        let mut s = stream();
        let mut out = BytesMut::new();
        s.event(b"not json", &mut out);
        assert_eq!(events_of(&out).last().unwrap(), "response.failed");
    }

    fn events_of(out: &[u8]) -> Vec<String> {
        events(out).into_iter().map(|(n, _)| n).collect()
    }
}
