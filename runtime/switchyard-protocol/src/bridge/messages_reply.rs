//! A chat completion rewritten as an Anthropic `message` object, and the pieces the stream
//! bridge shares with it (the message head, the stop reason for a finish reason).

use serde_json::Value;

use super::chat_out::{stop_string, ChatReply};
use super::new_id;
use crate::messages::{MessageObject, MessageUsage, MessagesRequest, OutputBlock};

/// What the `message` objects of one request share.
#[derive(Debug, Clone)]
pub struct MessageHead {
    pub id: String,
    pub model: String,
    /// The request's stop sequences: a chat `stop` finish that matched one of them is
    /// reported as `stop_sequence`.
    pub stop_sequences: Vec<String>,
}

impl MessageHead {
    pub fn new(request: &MessagesRequest) -> Self {
        Self {
            id: new_id("msg_"),
            model: request.model.clone(),
            stop_sequences: request.stop_sequences.clone().unwrap_or_default(),
        }
    }

    pub fn object(&self, content: Vec<OutputBlock>, usage: MessageUsage) -> MessageObject {
        MessageObject {
            id: self.id.clone(),
            kind: "message",
            role: "assistant",
            model: self.model.clone(),
            content,
            stop_reason: None,
            stop_sequence: None,
            usage,
        }
    }

    /// Anthropic's stop reason (and matched stop sequence) for a chat finish reason; the
    /// matched string comes from vLLM's `stop_reason` extension when the worker sends it.
    pub fn stop_reason(
        &self,
        finish_reason: Option<&str>,
        stop_reason: Option<&Value>,
    ) -> (&'static str, Option<String>) {
        match finish_reason {
            Some("length") => ("max_tokens", None),
            Some("tool_calls") | Some("function_call") => ("tool_use", None),
            Some("content_filter") => ("refusal", None),
            _ => match stop_string(stop_reason).filter(|s| self.stop_sequences.contains(s)) {
                Some(sequence) => ("stop_sequence", Some(sequence)),
                None => ("end_turn", None),
            },
        }
    }
}

/// A tool call's arguments as the `input` object Anthropic clients expect.
pub fn tool_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(arguments)
        .map_err(|e| format!("worker sent tool call arguments that are not JSON: {e}"))
}

/// Rewrites a chat completion body as a `message` object body.
pub fn from_chat(head: &MessageHead, body: &[u8]) -> Result<Vec<u8>, String> {
    let reply: ChatReply = serde_json::from_slice(body)
        .map_err(|e| format!("worker sent an invalid chat completion: {e}"))?;
    let Some(choice) = reply.choices.into_iter().next() else {
        return Err("worker sent a chat completion without choices".to_owned());
    };
    let mut content = Vec::new();
    if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
        content.push(OutputBlock::Text { text });
    }
    for call in choice.message.tool_calls.unwrap_or_default() {
        content.push(OutputBlock::ToolUse {
            id: call.id.unwrap_or_else(|| new_id("toolu_")),
            name: call.function.name.unwrap_or_default(),
            input: tool_input(call.function.arguments.as_deref().unwrap_or(""))?,
        });
    }
    let usage = reply
        .usage
        .map(|u| MessageUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
        })
        .unwrap_or_default();
    let mut message = head.object(content, usage);
    let (reason, sequence) =
        head.stop_reason(choice.finish_reason.as_deref(), choice.stop_reason.as_ref());
    message.stop_reason = Some(reason);
    message.stop_sequence = sequence;
    if !reply.model.is_empty() {
        message.model = reply.model;
    }
    serde_json::to_vec(&message).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn head() -> MessageHead {
        MessageHead::new(
            &serde_json::from_value(json!({"model":"m","max_tokens":5,"stop_sequences":["END"],
                "messages":[{"role":"user","content":"hi"}]}))
            .unwrap(),
        )
    }

    #[test]
    fn text_and_tool_calls_become_content_blocks() {
        let body = br#"{"model":"m","choices":[{"message":{"content":"ok","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let v: Value = serde_json::from_slice(&from_chat(&head(), body).unwrap()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["content"][0], json!({"type":"text","text":"ok"}));
        assert_eq!(v["content"][1]["type"], "tool_use");
        assert_eq!(v["content"][1]["input"], json!({"a":1}));
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["usage"], json!({"input_tokens":3,"output_tokens":4}));
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        let h = head();
        assert_eq!(h.stop_reason(Some("stop"), None), ("end_turn", None));
        assert_eq!(h.stop_reason(Some("length"), None), ("max_tokens", None));
        assert_eq!(
            h.stop_reason(Some("stop"), Some(&json!("END"))),
            ("stop_sequence", Some("END".to_owned()))
        );
        assert_eq!(
            h.stop_reason(Some("stop"), Some(&json!(2))),
            ("end_turn", None)
        );
        assert!(from_chat(&h, br#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":"{oops"}}]}}]}"#).is_err());
    }
}
