//! Chat ↔ completions translation for completions-only workers.
//!
//! A chat request is rendered through the instance's chat template into a completions
//! request; the worker's completion (or each streamed completion chunk) is turned back into
//! the chat shape, so the client cannot tell the difference.

use bytes::Bytes;
use serde_json::value::RawValue;
use switchyard_protocol::{
    ChatChoice, ChatChunkChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatDelta, ChatMessage, CompletionChunk, CompletionRequest,
    CompletionResponse, MessageContent, Prompt, StreamOptions,
};
use switchyard_runtime::ChatTemplate;

/// Chat-only request fields a completions endpoint would reject or misread.
const CHAT_ONLY_FIELDS: &[&str] = &[
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "functions",
    "function_call",
    "max_completion_tokens",
];

/// Chat fields whose meaning a completions request cannot carry: dropped above (tools,
/// structured output) or answered in another shape (log probabilities).
const NOT_TRANSLATABLE: &[&str] = &[
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "logprobs",
    "top_logprobs",
];

/// The first field of `chat` that [`chat_to_completion`] would lose (a migration through a
/// completions continuation could not honour it), ignoring values that ask for nothing
/// (`tools: []`, `tool_choice: "none"`, `response_format: {"type": "text"}`, `false`, `0`).
pub fn lost_in_translation(chat: &ChatCompletionRequest) -> Option<&'static str> {
    NOT_TRANSLATABLE.iter().copied().find(|field| {
        chat.extra
            .get(*field)
            .is_some_and(|v| asks_for_something(v))
    })
}

/// Every value that asks for nothing is a few bytes; anything longer asks for something and
/// is not parsed (it may be a huge array).
fn asks_for_something(raw: &RawValue) -> bool {
    use serde_json::Value;
    if raw.get().len() > 64 {
        return true;
    }
    let Ok(value) = serde_json::from_str::<Value>(raw.get()) else {
        return true;
    };
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => s != "none",
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Object(o) => !(o.len() == 1 && o.get("type") == Some(&Value::from("text"))),
        Value::Bool(true) => true,
    }
}

/// Renders `chat` into a completions request body. Streams always ask for usage; the relay
/// drops the usage chunk again if the client did not ask for it.
pub fn chat_to_completion(
    chat: &ChatCompletionRequest,
    template: &ChatTemplate,
) -> Result<Bytes, String> {
    let prompt = template.render(&chat.messages).map_err(|e| e.to_string())?;
    let mut extra = chat.extra.clone();
    for field in CHAT_ONLY_FIELDS {
        extra.remove(*field);
    }
    let request = CompletionRequest {
        model: chat.model.clone(),
        prompt: Prompt::Text(prompt),
        stream: chat.stream,
        stream_options: chat.is_stream().then(|| StreamOptions {
            include_usage: Some(true),
            extra: Default::default(),
        }),
        max_tokens: chat.output_limit(),
        n: chat.n,
        seed: chat.seed,
        extra,
    };
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Converts a non-streamed completion into a chat completion.
pub fn completion_to_chat(body: &[u8]) -> Result<Bytes, String> {
    let completion: CompletionResponse = serde_json::from_slice(body)
        .map_err(|e| format!("worker sent an invalid completion: {e}"))?;
    let chat = ChatCompletionResponse {
        id: completion.id,
        object: "chat.completion".to_owned(),
        created: completion.created,
        model: completion.model,
        choices: completion
            .choices
            .into_iter()
            .map(|c| ChatChoice {
                index: c.index,
                message: assistant(c.text),
                finish_reason: c.finish_reason,
                extra: Default::default(),
            })
            .collect(),
        usage: completion.usage,
        extra: Default::default(),
    };
    serde_json::to_vec(&chat)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

fn assistant(text: String) -> ChatMessage {
    ChatMessage {
        role: "assistant".to_owned(),
        content: Some(MessageContent::Text(text)),
        name: None,
        extra: Default::default(),
    }
}

/// Turns streamed completion chunks into chat chunks; the first content carries the role.
#[derive(Debug, Default)]
pub struct ChunkTranslator {
    sent_role: bool,
}

impl ChunkTranslator {
    /// For a stream that continues one whose role delta was already sent (migration).
    pub fn continuing() -> Self {
        Self { sent_role: true }
    }

    /// Translates one event payload (not `[DONE]`).
    pub fn translate(&mut self, data: &[u8]) -> Result<Bytes, String> {
        let chunk: CompletionChunk = serde_json::from_slice(data)
            .map_err(|e| format!("worker sent an invalid chunk: {e}"))?;
        let choices = chunk
            .choices
            .into_iter()
            .map(|c| {
                let role = (!self.sent_role).then(|| "assistant".to_owned());
                self.sent_role = true;
                ChatChunkChoice {
                    index: c.index,
                    delta: ChatDelta {
                        role,
                        content: Some(c.text),
                        extra: Default::default(),
                    },
                    finish_reason: c.finish_reason,
                    extra: Default::default(),
                }
            })
            .collect();
        let chat = ChatCompletionChunk {
            id: chunk.id,
            object: "chat.completion.chunk".to_owned(),
            created: chunk.created,
            model: chunk.model,
            choices,
            usage: chunk.usage,
            extra: Default::default(),
        };
        serde_json::to_vec(&chat)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn chat_request_becomes_a_templated_completion() {
        let chat: ChatCompletionRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":7,"temperature":0.5,"tools":[],"stream":true}"#,
        )
        .unwrap();
        let body = chat_to_completion(&chat, &ChatTemplate::default()).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["prompt"], "<|user|>\nhi\n<|assistant|>\n");
        assert_eq!(v["max_tokens"], 7);
        assert_eq!(v["temperature"], 0.5);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(v.get("tools").is_none() && v.get("messages").is_none());
    }

    #[test]
    fn fields_a_completion_cannot_carry_are_named() {
        let chat = |extra: &str| -> ChatCompletionRequest {
            serde_json::from_str(&format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#
            ))
            .unwrap()
        };
        assert_eq!(lost_in_translation(&chat("")), None);
        for harmless in [
            r#","tools":[]"#,
            r#","tool_choice":"none""#,
            r#","response_format":{"type":"text"}"#,
            r#","logprobs":false,"top_logprobs":0"#,
            r#","temperature":0,"seed":1"#,
        ] {
            assert_eq!(lost_in_translation(&chat(harmless)), None, "{harmless}");
        }
        for (extra, field) in [
            (
                r#","tools":[{"type":"function","function":{"name":"f"}}]"#,
                "tools",
            ),
            (r#","tool_choice":"required""#, "tool_choice"),
            (
                r#","response_format":{"type":"json_object"}"#,
                "response_format",
            ),
            (r#","logprobs":true"#, "logprobs"),
            (r#","functions":[{"name":"f"}]"#, "functions"),
        ] {
            assert_eq!(lost_in_translation(&chat(extra)), Some(field), "{extra}");
        }
    }

    #[test]
    fn completion_response_becomes_chat() {
        let out = completion_to_chat(
            br#"{"id":"c1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" hello","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], " hello");
        assert_eq!(v["usage"]["total_tokens"], 4);
        assert!(completion_to_chat(b"{}").is_err());
    }

    #[test]
    fn chunks_become_chat_chunks_with_the_role_once() {
        let mut t = ChunkTranslator::default();
        let chunk = |text: &str| {
            format!(
                r#"{{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{{"index":0,"text":"{text}","finish_reason":null}}]}}"#
            )
        };
        let a: Value =
            serde_json::from_slice(&t.translate(chunk(" a").as_bytes()).unwrap()).unwrap();
        let b: Value =
            serde_json::from_slice(&t.translate(chunk(" b").as_bytes()).unwrap()).unwrap();
        assert_eq!(a["object"], "chat.completion.chunk");
        assert_eq!(a["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(a["choices"][0]["delta"]["content"], " a");
        assert!(b["choices"][0]["delta"].get("role").is_none());
        let usage: Value = serde_json::from_slice(
            &t.translate(br#"{"id":"c","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 2);
    }
}
