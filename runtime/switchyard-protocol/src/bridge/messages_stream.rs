//! A chat chunk stream rewritten as Anthropic's Messages event stream:
//!
//! `message_start`, `ping`, then per content block `content_block_start`,
//! `content_block_delta`* (`text_delta` or `input_json_delta`), `content_block_stop`; then
//! `message_delta` (stop reason and usage) and `message_stop`. A stream that fails after it
//! started ends with an `error` event in Anthropic's shape.

use bytes::BytesMut;

use super::chat_out::ToolCallDelta;
use super::chunk_scan::ChunkScanner;
use super::messages_reply::MessageHead;
use super::{messages_events, new_id, write_event, StreamBridge};
use crate::messages::{
    AnthropicError, BlockDelta, BlockDeltaEvent, BlockStartEvent, MessageUsage, MessagesRequest,
    OutputBlock,
};
use crate::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Fresh,
    Open,
    Finished,
}

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text,
    /// A tool call; the chat chunk's `tool_calls` index it comes from.
    Tool {
        chat_index: u32,
    },
}

#[derive(Debug)]
pub struct MessagesStream {
    head: MessageHead,
    phase: Phase,
    /// Index of the open block, or of the next one.
    index: usize,
    open: Option<OpenBlock>,
    finish_reason: Option<String>,
    stop_string: Option<serde_json::Value>,
    usage: Option<Usage>,
    scanner: ChunkScanner,
}

impl MessagesStream {
    pub fn new(request: &MessagesRequest) -> Self {
        Self::with_head(MessageHead::new(request))
    }

    pub fn with_head(head: MessageHead) -> Self {
        Self {
            head,
            phase: Phase::Fresh,
            index: 0,
            open: None,
            finish_reason: None,
            stop_string: None,
            usage: None,
            scanner: ChunkScanner::default(),
        }
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.phase != Phase::Fresh {
            return;
        }
        self.phase = Phase::Open;
        // Input tokens are not known yet (chat reports usage at the end); `message_delta`
        // carries them.
        messages_events::write_message_start(out, &self.head.id, &self.head.model);
        // Constant events are constant bytes (no JSON map built and serialized per stream).
        out.extend_from_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }

    /// Opens a block (closing the open one): a text block, or a tool call's `content`.
    fn open_block(&mut self, block: OpenBlock, content: Option<&OutputBlock>, out: &mut BytesMut) {
        self.close_block(out);
        match content {
            None => messages_events::write_text_block_start(out, self.index),
            Some(content) => {
                let kind = "content_block_start";
                let event = BlockStartEvent {
                    kind,
                    index: self.index,
                    content_block: content,
                };
                write_event(out, kind, &event);
            }
        }
        self.open = Some(block);
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if self.open.take().is_some() {
            messages_events::write_block_stop(out, self.index);
            self.index += 1;
        }
    }

    fn delta(&self, delta: BlockDelta<'_>, out: &mut BytesMut) {
        let kind = "content_block_delta";
        write_event(
            out,
            kind,
            &BlockDeltaEvent {
                kind,
                index: self.index,
                delta,
            },
        );
    }

    fn text(&mut self, text: &str, out: &mut BytesMut) {
        if self.open != Some(OpenBlock::Text) {
            self.open_block(OpenBlock::Text, None, out);
        }
        messages_events::write_text_delta(out, self.index, text);
    }

    fn tool_call(&mut self, call: &ToolCallDelta<'_>, out: &mut BytesMut) {
        let this = OpenBlock::Tool {
            chat_index: call.index,
        };
        let function = call.function.as_ref();
        if self.open != Some(this) {
            let block = OutputBlock::ToolUse {
                id: call.id.clone().unwrap_or_else(|| new_id("toolu_")),
                name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                input: serde_json::Value::Object(Default::default()),
            };
            self.open_block(this, Some(&block), out);
        }
        if let Some(partial_json) = function
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        {
            self.delta(BlockDelta::InputJsonDelta { partial_json }, out);
        }
    }
}

impl StreamBridge for MessagesStream {
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
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                self.text(text, out);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                self.tool_call(call, out);
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.to_string());
                self.stop_string = choice.stop_reason.clone();
                self.close_block(out);
            }
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        if self.phase == Phase::Finished {
            return;
        }
        self.start(out);
        self.close_block(out);
        self.phase = Phase::Finished;
        let (stop_reason, sequence) = self
            .head
            .stop_reason(self.finish_reason.as_deref(), self.stop_string.as_ref());
        let usage = self
            .usage
            .map(|u| MessageUsage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            })
            .unwrap_or_default();
        messages_events::write_message_delta(out, stop_reason, sequence.as_deref(), usage);
        out.extend_from_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }

    fn failed(&mut self, message: &str, out: &mut BytesMut) {
        if self.phase == Phase::Finished {
            return;
        }
        self.phase = Phase::Finished;
        write_event(out, "error", &AnthropicError::new("api_error", message));
    }

    fn finished(&self) -> bool {
        self.phase == Phase::Finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn events(out: &[u8]) -> Vec<(String, Value)> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
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

    fn stream() -> MessagesStream {
        MessagesStream::new(
            &serde_json::from_value(
                json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
            )
            .unwrap(),
        )
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
        json!({"choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
            .to_string()
            .into_bytes()
    }

    const USAGE: &[u8] =
        br#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;

    #[test]
    fn a_text_stream_has_anthropics_event_sequence() {
        let mut s = stream();
        let mut out = BytesMut::new();
        s.event(
            &chunk(json!({"role":"assistant","content":"Hel"}), None),
            &mut out,
        );
        s.event(&chunk(json!({"content":"lo"}), Some("length")), &mut out);
        s.event(USAGE, &mut out);
        s.event(b"[DONE]", &mut out);
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["content"], json!([]));
        assert_eq!(
            events[2].1["content_block"],
            json!({"type":"text","text":""})
        );
        assert_eq!(
            events[3].1["delta"],
            json!({"type":"text_delta","text":"Hel"})
        );
        assert_eq!(events[6].1["delta"]["stop_reason"], "max_tokens");
        assert_eq!(
            events[6].1["usage"],
            json!({"input_tokens":5,"output_tokens":2})
        );
    }

    #[test]
    fn tool_calls_become_tool_use_blocks_with_json_deltas() {
        let mut s = stream();
        let mut out = BytesMut::new();
        s.event(&chunk(json!({"content":"Checking."}), None), &mut out);
        s.event(&chunk(json!({"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get","arguments":"{\"a\""}}]}), None), &mut out);
        s.event(
            &chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}),
                None,
            ),
            &mut out,
        );
        s.event(&chunk(json!({"tool_calls":[{"index":1,"id":"call_2","function":{"name":"put","arguments":"{}"}}]}), Some("tool_calls")), &mut out);
        s.event(b"[DONE]", &mut out);
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            &names[2..],
            [
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[5].1["index"], 1);
        assert_eq!(
            events[5].1["content_block"],
            json!({"type":"tool_use","id":"call_1","name":"get","input":{}})
        );
        assert_eq!(
            events[6].1["delta"],
            json!({"type":"input_json_delta","partial_json":"{\"a\""})
        );
        assert_eq!(events[9].1["index"], 2);
        assert_eq!(events[12].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn a_failure_after_the_start_ends_with_an_error_event() {
        let mut s = stream();
        let mut out = BytesMut::new();
        s.event(&chunk(json!({"content":"Hel"}), None), &mut out);
        s.event(
            br#"{"error":{"message":"worker died","type":"upstream_error"}}"#,
            &mut out,
        );
        s.event(b"[DONE]", &mut out);
        let events = events(&out);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(
            data["error"],
            json!({"type":"api_error","message":"worker died"})
        );
        assert!(s.finished());
    }
}
