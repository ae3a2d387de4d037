//! A chat completion rewritten as a Responses `response` object, and the pieces the stream
//! bridge shares with it (the echoed parameters, the status for a finish reason).

use serde_json::json;

use super::chat_out::ChatReply;
use super::{new_id, now_secs};
use crate::responses::{
    IncompleteDetails, OutputItem, OutputText, ResponseEcho, ResponseObject, ResponseUsage,
    ResponsesRequest,
};

/// What every `response` object of one request shares: its id, creation time, model and
/// the echoed request parameters.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    pub echo: ResponseEcho,
}

impl ResponseHead {
    pub fn new(request: &ResponsesRequest) -> Self {
        Self {
            id: new_id("resp_"),
            created_at: now_secs(),
            model: request.model.clone(),
            echo: ResponseEcho {
                instructions: request.instructions.clone(),
                max_output_tokens: request.max_output_tokens,
                parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
                temperature: request.temperature,
                top_p: request.top_p,
                tool_choice: request.tool_choice.clone().unwrap_or_else(|| json!("auto")),
                tools: request.tools.clone().unwrap_or_default(),
                text: request.text.clone(),
                metadata: request.metadata.clone().unwrap_or_else(|| json!({})),
                store: false,
                previous_response_id: None,
            },
        }
    }

    /// A `response` object in `status` with `output`.
    pub fn object(
        &self,
        status: &'static str,
        output: Vec<OutputItem>,
        usage: Option<ResponseUsage>,
    ) -> ResponseObject {
        ResponseObject {
            id: self.id.clone(),
            object: "response",
            created_at: self.created_at,
            status,
            error: None,
            incomplete_details: None,
            model: self.model.clone(),
            output,
            usage,
            echo: self.echo.clone(),
        }
    }
}

/// The response status for a chat `finish_reason`: `length` and `content_filter` leave the
/// response incomplete, with the reason the API names.
pub fn status_for(finish_reason: Option<&str>) -> (&'static str, Option<IncompleteDetails>) {
    match finish_reason {
        Some("length") => (
            "incomplete",
            Some(IncompleteDetails {
                reason: "max_output_tokens",
            }),
        ),
        Some("content_filter") => (
            "incomplete",
            Some(IncompleteDetails {
                reason: "content_filter",
            }),
        ),
        _ => ("completed", None),
    }
}

/// Rewrites a chat completion body as a `response` object body.
pub fn from_chat(head: &ResponseHead, body: &[u8]) -> Result<Vec<u8>, String> {
    let reply: ChatReply = serde_json::from_slice(body)
        .map_err(|e| format!("worker sent an invalid chat completion: {e}"))?;
    let Some(choice) = reply.choices.into_iter().next() else {
        return Err("worker sent a chat completion without choices".to_owned());
    };
    let mut output = Vec::new();
    if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
        output.push(OutputItem::Message {
            id: new_id("msg_"),
            status: "completed",
            role: "assistant",
            content: vec![OutputText::new(text)],
        });
    }
    for call in choice.message.tool_calls.unwrap_or_default() {
        output.push(OutputItem::FunctionCall {
            id: new_id("fc_"),
            call_id: call.id.unwrap_or_else(|| new_id("call_")),
            name: call.function.name.unwrap_or_default(),
            arguments: call.function.arguments.unwrap_or_default(),
            status: "completed",
        });
    }
    let (status, incomplete) = status_for(choice.finish_reason.as_deref());
    let usage = reply
        .usage
        .map(|u| ResponseUsage::new(u.prompt_tokens, u.completion_tokens));
    let mut object = head.object(status, output, usage);
    object.incomplete_details = incomplete;
    if !reply.model.is_empty() {
        object.model = reply.model;
    }
    serde_json::to_vec(&object).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn head() -> ResponseHead {
        ResponseHead::new(
            &serde_json::from_value(json!({"model":"m","input":"hi","temperature":0.2})).unwrap(),
        )
    }

    #[test]
    fn text_and_tool_calls_become_output_items() {
        let body = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let v: Value = serde_json::from_slice(&from_chat(&head(), body).unwrap()).unwrap();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["output"][0]["type"], "message");
        assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
        assert_eq!(v["output"][0]["content"][0]["text"], "hello");
        assert_eq!(v["output"][1]["type"], "function_call");
        assert_eq!(v["output"][1]["call_id"], "call_1");
        assert_eq!(v["output"][1]["arguments"], "{\"a\":1}");
        assert_eq!(v["usage"]["input_tokens"], 3);
        assert_eq!(v["usage"]["output_tokens"], 4);
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert_eq!(v["temperature"], 0.2);
        assert_eq!(v["store"], false);
    }

    #[test]
    fn a_length_stop_is_incomplete() {
        let body = br#"{"choices":[{"message":{"content":"he"},"finish_reason":"length"}]}"#;
        let v: Value = serde_json::from_slice(&from_chat(&head(), body).unwrap()).unwrap();
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        assert!(from_chat(&head(), b"{}").is_err());
        assert!(from_chat(&head(), br#"{"choices":[]}"#).is_err());
    }
}
