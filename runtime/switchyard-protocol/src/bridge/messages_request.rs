//! A Messages request rewritten as a chat completions request.
//!
//! `system` becomes a system message; `tool_use` blocks become an assistant message's
//! `tool_calls`; `tool_result` blocks become `tool` messages (placed before the rest of their
//! user turn, since chat wants tool results right after the call). Server tools (versioned
//! `type`s such as web search) run on Anthropic's side and are refused.

use serde_json::{json, Map, Value};

use super::BridgeError;
use crate::messages::{Content, ContentBlock, MessagesRequest, SystemPrompt, Tool, ToolChoice};

/// Messages parameters with no chat counterpart that are safe to drop.
const DROPPED: &[&str] = &["thinking", "service_tier", "container", "mcp_servers"];

/// The chat request for `request`, as JSON.
pub fn to_chat(request: &MessagesRequest) -> Result<Value, BridgeError> {
    check_ranges(request)?;
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        let text = match system {
            SystemPrompt::Text(text) => text.clone(),
            SystemPrompt::Blocks(blocks) => text_of(blocks, "system")?,
        };
        messages.push(json!({"role": "system", "content": text}));
    }
    for (i, message) in request.messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        match message.role.as_str() {
            "user" => push_user(&mut messages, &message.content, &param)?,
            "assistant" => messages.push(assistant(&message.content, &param)?),
            other => {
                return Err(BridgeError::new(
                    format!("{param}.role"),
                    format!("`{other}` is not a valid role; use user or assistant."),
                ))
            }
        }
    }
    let mut chat = Map::new();
    chat.insert("model".into(), request.model.clone().into());
    chat.insert("messages".into(), Value::Array(messages));
    chat.insert("max_tokens".into(), request.max_tokens.into());
    if let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) {
        chat.insert("tools".into(), chat_tools(tools)?);
    }
    if let Some(choice) = &request.tool_choice {
        let (choice, parallel) = chat_tool_choice(choice)?;
        chat.insert("tool_choice".into(), choice);
        if let Some(parallel) = parallel {
            chat.insert("parallel_tool_calls".into(), parallel.into());
        }
    }
    if let Some(stop) = request.stop_sequences.as_ref().filter(|s| !s.is_empty()) {
        chat.insert("stop".into(), json!(stop));
    }
    if let Some(t) = request.temperature {
        chat.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        chat.insert("top_p".into(), p.into());
    }
    if let Some(k) = request.top_k {
        // Not an OpenAI parameter, but vLLM and SGLang take it on chat.
        chat.insert("top_k".into(), k.into());
    }
    if let Some(user) = request
        .metadata
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        chat.insert("user".into(), user.into());
    }
    if request.is_stream() {
        chat.insert("stream".into(), true.into());
        // The bridge needs the usage for `message_delta`.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    for (key, value) in &request.extra {
        if !DROPPED.contains(&key.as_str()) && !chat.contains_key(key) {
            chat.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(chat))
}

fn check_ranges(request: &MessagesRequest) -> Result<(), BridgeError> {
    if request.model.is_empty() {
        return Err(BridgeError::new("model", "model: must not be empty"));
    }
    if request.max_tokens == 0 {
        return Err(BridgeError::new(
            "max_tokens",
            "max_tokens: must be greater than or equal to 1",
        ));
    }
    if request.messages.is_empty() {
        return Err(BridgeError::new(
            "messages",
            "messages: at least one message is required",
        ));
    }
    if let Some(t) = request.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(BridgeError::new(
                "temperature",
                "temperature: must be between 0 and 1",
            ));
        }
    }
    if let Some(p) = request.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(BridgeError::new(
                "top_p",
                "top_p: must be greater than 0 and at most 1",
            ));
        }
    }
    Ok(())
}

/// The joined text of text blocks; any other block is refused.
fn text_of(blocks: &[ContentBlock], param: &str) -> Result<String, BridgeError> {
    let mut text = String::new();
    for (j, block) in blocks.iter().enumerate() {
        match (block.kind.as_str(), &block.text) {
            ("text", Some(t)) => text.push_str(t),
            (kind, _) => {
                return Err(BridgeError::new(
                    format!("{param}[{j}]"),
                    format!("{param}[{j}]: only text blocks are supported here, got `{kind}`"),
                ))
            }
        }
    }
    Ok(text)
}

/// A user turn: `tool_result` blocks become `tool` messages first, the rest one user message.
fn push_user(messages: &mut Vec<Value>, content: &Content, param: &str) -> Result<(), BridgeError> {
    let blocks = match content {
        Content::Text(text) => {
            messages.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}.content[{j}]");
        match block.kind.as_str() {
            "text" => {
                parts.push(json!({"type": "text", "text": block.text.as_deref().unwrap_or("")}))
            }
            "image" => parts.push(image(block, &param)?),
            "tool_result" => {
                let id = block.tool_use_id.as_deref().ok_or_else(|| {
                    BridgeError::new(
                        format!("{param}.tool_use_id"),
                        format!("{param}.tool_use_id: Field required"),
                    )
                })?;
                let mut text = match &block.content {
                    None => String::new(),
                    Some(Content::Text(text)) => text.clone(),
                    Some(Content::Blocks(inner)) => text_of(inner, &format!("{param}.content"))?,
                };
                if block.is_error == Some(true) {
                    text.insert_str(0, "Error: ");
                }
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            other => return Err(unsupported_block(&param, other)),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = if parts.iter().all(|p| p["type"] == "text") {
        Value::String(parts.iter().filter_map(|p| p["text"].as_str()).collect())
    } else {
        Value::Array(parts)
    };
    messages.push(json!({"role": "user", "content": content}));
    Ok(())
}

fn assistant(content: &Content, param: &str) -> Result<Value, BridgeError> {
    let blocks = match content {
        Content::Text(text) => return Ok(json!({"role": "assistant", "content": text})),
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}.content[{j}]");
        match block.kind.as_str() {
            "text" => text.push_str(block.text.as_deref().unwrap_or("")),
            "tool_use" => {
                let field = |name: &str| {
                    BridgeError::new(
                        format!("{param}.{name}"),
                        format!("{param}.{name}: Field required"),
                    )
                };
                let id = block.id.as_deref().ok_or_else(|| field("id"))?;
                let name = block.name.as_deref().ok_or_else(|| field("name"))?;
                let input = block.input.clone().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            // Earlier reasoning: chat has no input form for it.
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(&param, other)),
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

fn image(block: &ContentBlock, param: &str) -> Result<Value, BridgeError> {
    let source = block.source.as_ref();
    let url = match source.map(|s| s.kind.as_str()) {
        Some("base64") => {
            let s = source.ok_or_else(|| unsupported_block(param, "image"))?;
            match (&s.media_type, &s.data) {
                (Some(media), Some(data)) => format!("data:{media};base64,{data}"),
                _ => {
                    return Err(BridgeError::new(
                        format!("{param}.source"),
                        format!("{param}.source: `media_type` and `data` are required"),
                    ))
                }
            }
        }
        Some("url") => source.and_then(|s| s.url.clone()).ok_or_else(|| {
            BridgeError::new(
                format!("{param}.source.url"),
                format!("{param}.source.url: Field required"),
            )
        })?,
        _ => {
            return Err(BridgeError::new(
                format!("{param}.source"),
                format!("{param}.source: only `base64` and `url` image sources are supported"),
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn unsupported_block(param: &str, kind: &str) -> BridgeError {
    BridgeError::new(
        format!("{param}.type"),
        format!("{param}.type: content blocks of type `{kind}` are not supported"),
    )
}

fn chat_tools(tools: &[Tool]) -> Result<Value, BridgeError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "custom") {
            return Err(BridgeError::new(
                format!("tools[{i}].type"),
                format!("tools[{i}].type: server tools (`{kind}`) are not supported; only client tools are"),
            ));
        }
        let mut function = json!({
            "name": tool.name,
            "parameters": tool.input_schema.clone().unwrap_or_else(|| json!({"type": "object"})),
        });
        if let Some(d) = &tool.description {
            function["description"] = d.clone().into();
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

/// Chat's `tool_choice`, and `parallel_tool_calls: false` when parallel use is disabled.
fn chat_tool_choice(choice: &ToolChoice) -> Result<(Value, Option<bool>), BridgeError> {
    let parallel = choice.disable_parallel_tool_use.map(|d| !d);
    let value = match choice.kind.as_str() {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = choice.name.as_deref().ok_or_else(|| {
                BridgeError::new("tool_choice.name", "tool_choice.name: Field required")
            })?;
            json!({"type": "function", "function": {"name": name}})
        }
        other => {
            return Err(BridgeError::new(
                "tool_choice.type",
                format!("tool_choice.type: `{other}` is not one of auto, any, tool, none"),
            ))
        }
    };
    Ok((value, parallel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<Value, BridgeError> {
        to_chat(&serde_json::from_value(body).unwrap())
    }

    #[test]
    fn system_text_and_parameters_translate() {
        let c = chat(
            json!({"model":"m","max_tokens":9,"system":[{"type":"text","text":"be brief"}],
            "messages":[{"role":"user","content":"hi"}],"stop_sequences":["END"],
            "temperature":0.3,"top_k":5,"metadata":{"user_id":"u1"},"stream":true}),
        )
        .unwrap();
        assert_eq!(
            c["messages"],
            json!([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}])
        );
        assert_eq!(c["max_tokens"], 9);
        assert_eq!(c["stop"], json!(["END"]));
        assert_eq!(c["top_k"], 5);
        assert_eq!(c["user"], "u1");
        assert_eq!(c["stream_options"]["include_usage"], true);
    }

    #[test]
    fn tool_use_and_tool_result_become_tool_calls_and_tool_messages() {
        let c = chat(json!({"model":"m","max_tokens":9,
            "tools":[{"name":"get","description":"d","input_schema":{"type":"object"}}],
            "tool_choice":{"type":"any","disable_parallel_tool_use":true},
            "messages":[
                {"role":"user","content":"weather?"},
                {"role":"assistant","content":[{"type":"text","text":"checking"},
                    {"type":"tool_use","id":"toolu_1","name":"get","input":{"city":"Oslo"}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"sunny"}]},
                    {"type":"text","text":"and now?"},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}
            ]}))
        .unwrap();
        let m = c["messages"].as_array().unwrap();
        assert_eq!(m[1]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            m[1]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Oslo\"}"
        );
        assert_eq!(m[1]["content"], "checking");
        assert_eq!(
            m[2],
            json!({"role":"tool","tool_call_id":"toolu_1","content":"sunny"})
        );
        assert_eq!(m[3]["content"][0]["text"], "and now?");
        assert_eq!(
            m[3]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AA"
        );
        assert_eq!(
            c["tools"][0]["function"]["parameters"],
            json!({"type":"object"})
        );
        assert_eq!(c["tool_choice"], "required");
        assert_eq!(c["parallel_tool_calls"], false);
    }

    #[test]
    fn invalid_requests_name_the_field() {
        for (body, param) in [
            (
                json!({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}),
                "max_tokens",
            ),
            (
                json!({"model":"m","max_tokens":1,"messages":[]}),
                "messages",
            ),
            (
                json!({"model":"m","max_tokens":1,"messages":[{"role":"bogus","content":"x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model":"m","max_tokens":1,"temperature":1.5,"messages":[{"role":"user","content":"x"}]}),
                "temperature",
            ),
            (
                json!({"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}),
                "tools[0].type",
            ),
            (
                json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document"}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"model":"m","max_tokens":1,"tool_choice":{"type":"tool"},"messages":[{"role":"user","content":"x"}]}),
                "tool_choice.name",
            ),
        ] {
            let e = chat(body.clone()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
        }
    }
}
