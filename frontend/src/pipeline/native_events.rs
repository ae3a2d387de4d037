//! What the relay needs to know about a native agent-API stream, event by event: the SSE
//! event name to write (the frontend's framer keeps only `data`, and both APIs repeat the
//! name as the payload's `type`), which events carry tokens, the usage the worker reports,
//! whether the stream reached its terminal event, and — when it did not — the API's own
//! failure event to end it with.
//!
//! OpenAI Responses: `response.completed`/`.incomplete`/`.failed` end a stream and carry
//! `response.usage.{input,output}_tokens`; `error` is a failure; every event has a
//! `sequence_number`. Anthropic Messages: `message_start` carries `message.usage`,
//! `message_delta` the cumulative `usage.output_tokens`, `message_stop` ends the stream and
//! `error` is a failure.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use switchyard_protocol::bridge::write_event;
use switchyard_protocol::messages::AnthropicError;
use switchyard_protocol::Usage;
use switchyard_runtime::Api;

/// What one event was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Generated output (a text, tool-argument or reasoning delta): one inter-token step.
    Delta,
    /// Any other event of the stream.
    Other,
    /// The stream's last event: relayed, then the stream ends.
    Terminal,
    /// The worker reported a failure in the API's own event: relayed, then the stream ends
    /// and the worker is blamed.
    Failed(String),
}

/// The fields any event of either API may carry that the relay reads.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    sequence_number: Option<u64>,
    /// Responses: the response object of lifecycle events.
    #[serde(default)]
    response: Option<Head>,
    /// Messages: `message_start`'s message; Responses `error`: the error's text.
    #[serde(default)]
    message: Option<MessageField>,
    /// Messages: `message_delta`'s usage.
    #[serde(default)]
    usage: Option<NativeUsage>,
    /// Messages `error`: the error object.
    #[serde(default)]
    error: Option<ErrorProbe>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MessageField {
    Text(String),
    Head(Head),
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<NativeUsage>,
    #[serde(default)]
    error: Option<ErrorProbe>,
}

#[derive(Deserialize)]
struct ErrorProbe {
    #[serde(default)]
    message: Option<String>,
}

/// Token counts as both agent APIs spell them. A count the frontend cannot read is left
/// out (as for chat), never a failed response.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct NativeUsage {
    #[serde(default)]
    pub input_tokens: Option<u32>,
    #[serde(default)]
    pub output_tokens: Option<u32>,
}

/// The usage of a whole (non-streamed) native answer: `usage.input_tokens/output_tokens`
/// in both APIs.
pub fn whole_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Whole {
        usage: Option<NativeUsage>,
    }
    let usage = serde_json::from_slice::<Whole>(body).ok()?.usage?;
    Some(Usage::new(
        usage.input_tokens.unwrap_or(0),
        usage.output_tokens.unwrap_or(0),
    ))
}

/// One native stream's state.
#[derive(Debug)]
pub struct NativeEvents {
    api: Api,
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    /// Responses: the last sequence number seen, so a failure event continues the count.
    sequence: Option<u64>,
    response_id: Option<String>,
    model: Option<String>,
}

impl NativeEvents {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            input_tokens: None,
            output_tokens: None,
            sequence: None,
            response_id: None,
            model: None,
        }
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// Reads one event's payload; `name` is the SSE event name to write it under. A payload
    /// that is not an event of the API is the worker's fault (a malformed stream).
    pub fn observe(&mut self, data: &[u8]) -> Result<(String, Seen), String> {
        let probe: Probe = serde_json::from_slice(data)
            .map_err(|e| format!("not a {} event: {e}", self.api.as_str()))?;
        if probe.sequence_number.is_some() {
            self.sequence = probe.sequence_number;
        }
        let seen = match self.api {
            Api::Messages => self.messages_event(&probe),
            _ => self.responses_event(&probe),
        };
        Ok((probe.kind, seen))
    }

    fn responses_event(&mut self, probe: &Probe) -> Seen {
        if let Some(head) = &probe.response {
            if head.id.is_some() {
                self.response_id.clone_from(&head.id);
            }
            if head.model.is_some() {
                self.model.clone_from(&head.model);
            }
            if let Some(usage) = head.usage {
                self.take_usage(usage);
            }
        }
        match probe.kind.as_str() {
            "response.completed" | "response.incomplete" => Seen::Terminal,
            "response.failed" => Seen::Failed(
                probe
                    .response
                    .as_ref()
                    .and_then(|r| r.error.as_ref())
                    .and_then(|e| e.message.clone())
                    .unwrap_or_else(|| "response.failed".to_owned()),
            ),
            "error" => Seen::Failed(match &probe.message {
                Some(MessageField::Text(text)) => text.clone(),
                _ => "error event".to_owned(),
            }),
            kind if kind.ends_with(".delta") => Seen::Delta,
            _ => Seen::Other,
        }
    }

    fn messages_event(&mut self, probe: &Probe) -> Seen {
        if let Some(MessageField::Head(head)) = &probe.message {
            if let Some(usage) = head.usage {
                self.take_usage(usage);
            }
        }
        if let Some(usage) = probe.usage {
            self.take_usage(usage);
        }
        match probe.kind.as_str() {
            "message_stop" => Seen::Terminal,
            "error" => Seen::Failed(
                probe
                    .error
                    .as_ref()
                    .and_then(|e| e.message.clone())
                    .unwrap_or_else(|| "error event".to_owned()),
            ),
            "content_block_delta" => Seen::Delta,
            _ => Seen::Other,
        }
    }

    /// Later counts replace earlier ones (`message_delta`'s output count is cumulative).
    fn take_usage(&mut self, usage: NativeUsage) {
        if usage.input_tokens.is_some() {
            self.input_tokens = usage.input_tokens;
        }
        if usage.output_tokens.is_some() {
            self.output_tokens = usage.output_tokens;
        }
    }

    /// The usage the worker reported, if it reported any.
    pub fn usage(&self) -> Option<Usage> {
        if self.input_tokens.is_none() && self.output_tokens.is_none() {
            return None;
        }
        Some(Usage::new(
            self.input_tokens.unwrap_or(0),
            self.output_tokens.unwrap_or(0),
        ))
    }

    /// `data` written as the named event the client's SDK dispatches on.
    pub fn encode(name: &str, data: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(name.len() + data.len() + 16);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\n\n");
        out.freeze()
    }

    /// The API's failure event, ending a stream the worker broke off: `response.failed`
    /// (with the response id and the next sequence number) or Anthropic's `error` event.
    pub fn failure(&mut self, message: &str) -> Bytes {
        let mut out = BytesMut::new();
        match self.api {
            Api::Messages => {
                write_event(
                    &mut out,
                    "error",
                    &AnthropicError::new("api_error", message),
                );
            }
            _ => {
                let sequence = self.sequence.map_or(0, |s| s + 1);
                self.sequence = Some(sequence);
                let event = serde_json::json!({
                    "type": "response.failed",
                    "sequence_number": sequence,
                    "response": {
                        "id": self.response_id,
                        "object": "response",
                        "created_at": switchyard_protocol::bridge::now_secs(),
                        "model": self.model,
                        "status": "failed",
                        "error": {"code": "server_error", "message": message},
                        "incomplete_details": null,
                        "output": [],
                        "usage": self.usage().map(|u| serde_json::json!({
                            "input_tokens": u.prompt_tokens,
                            "output_tokens": u.completion_tokens,
                            "total_tokens": u.total_tokens,
                        })),
                    },
                });
                write_event(&mut out, "response.failed", &event);
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn data(event: &Bytes) -> (String, Value) {
        let text = std::str::from_utf8(event).unwrap();
        let (head, body) = text.split_once("\ndata: ").unwrap();
        (
            head.trim_start_matches("event: ").to_owned(),
            serde_json::from_str(body.trim_end()).unwrap(),
        )
    }

    #[test]
    fn a_responses_stream_reports_usage_and_ends_at_completed() {
        let mut s = NativeEvents::new(Api::Responses);
        let created = br#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"m","usage":null}}"#;
        assert_eq!(
            s.observe(created).unwrap(),
            ("response.created".into(), Seen::Other)
        );
        let delta = br#"{"type":"response.output_text.delta","sequence_number":4,"delta":"hi"}"#;
        assert_eq!(s.observe(delta).unwrap().1, Seen::Delta);
        assert_eq!(s.usage(), None);
        let done = br#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":{"input_tokens":7,"output_tokens":3,"total_tokens":10}}}"#;
        assert_eq!(s.observe(done).unwrap().1, Seen::Terminal);
        assert_eq!(s.usage(), Some(Usage::new(7, 3)));
    }

    #[test]
    fn a_broken_responses_stream_ends_with_response_failed_continuing_the_sequence() {
        let mut s = NativeEvents::new(Api::Responses);
        s.observe(br#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"m"}}"#)
            .unwrap();
        s.observe(br#"{"type":"response.output_text.delta","sequence_number":5,"delta":"x"}"#)
            .unwrap();
        let (name, event) = data(&s.failure("worker gone"));
        assert_eq!(name, "response.failed");
        assert_eq!(event["sequence_number"], 6);
        assert_eq!(event["response"]["id"], "resp_1");
        assert_eq!(event["response"]["status"], "failed");
        assert_eq!(event["response"]["error"]["message"], "worker gone");
    }

    #[test]
    fn a_messages_stream_takes_input_from_start_and_output_from_the_last_delta() {
        let mut s = NativeEvents::new(Api::Messages);
        let start = br#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":12,"output_tokens":1}}}"#;
        assert_eq!(
            s.observe(start).unwrap(),
            ("message_start".into(), Seen::Other)
        );
        let delta =
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#;
        assert_eq!(s.observe(delta).unwrap().1, Seen::Delta);
        let end = br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":16}}"#;
        s.observe(end).unwrap();
        assert_eq!(
            s.observe(br#"{"type":"message_stop"}"#).unwrap().1,
            Seen::Terminal
        );
        assert_eq!(s.usage(), Some(Usage::new(12, 16)));
        let (name, event) = data(&s.failure("late"));
        assert_eq!(
            (name.as_str(), &event["type"], &event["error"]["type"]),
            ("error", &Value::from("error"), &Value::from("api_error"))
        );
    }

    #[test]
    fn worker_error_events_are_failures_and_non_events_are_malformed() {
        let mut s = NativeEvents::new(Api::Messages);
        let overloaded =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#;
        assert_eq!(
            s.observe(overloaded).unwrap().1,
            Seen::Failed("busy".into())
        );
        assert!(s.observe(b"[1,2]").is_err());
        let mut r = NativeEvents::new(Api::Responses);
        let error =
            br#"{"type":"error","code":"server_error","message":"boom","sequence_number":2}"#;
        assert_eq!(r.observe(error).unwrap().1, Seen::Failed("boom".into()));
        assert_eq!(
            whole_usage(br#"{"id":"r","usage":{"input_tokens":2,"output_tokens":5}}"#),
            Some(Usage::new(2, 5))
        );
    }
}
