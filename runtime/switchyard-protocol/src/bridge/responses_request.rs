//! A Responses request rewritten as a chat completions request.
//!
//! Stateless only: `store: true`, `previous_response_id`, `conversation` and `background`
//! would need a response store, which Switchyard does not have; they are refused by name
//! rather than silently ignored. Built-in tools (web search, file search, ...) run on
//! OpenAI's side and have no chat equivalent; they are refused too.

use serde_json::{json, Map, Value};

use super::BridgeError;
use crate::responses::{
    InputContent, InputItem, InputPart, ResponsesInput, ResponsesRequest, ResponsesTool, TextConfig,
};

/// Responses parameters with no chat counterpart that are safe to drop (they change
/// bookkeeping on OpenAI's side, not the generated text).
const DROPPED: &[&str] = &[
    "include",
    "truncation",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "max_tool_calls",
    "top_logprobs",
    "stream_options",
];

/// The chat request for `request`, as JSON.
pub fn to_chat(request: &ResponsesRequest) -> Result<Value, BridgeError> {
    refuse_stateful(request)?;
    check_ranges(request)?;
    let mut messages = Vec::new();
    if let Some(instructions) = &request.instructions {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match &request.input {
        ResponsesInput::Text(text) => messages.push(json!({"role": "user", "content": text})),
        ResponsesInput::Items(items) => {
            for (i, item) in items.iter().enumerate() {
                push_item(&mut messages, item, i)?;
            }
        }
    }
    if messages.is_empty() {
        return Err(BridgeError::new("input", "`input` must not be empty."));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), request.model.clone().into());
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = &request.tools {
        if !tools.is_empty() {
            chat.insert("tools".into(), chat_tools(tools)?);
        }
    }
    if let Some(choice) = &request.tool_choice {
        chat.insert("tool_choice".into(), chat_tool_choice(choice)?);
    }
    insert_some(
        &mut chat,
        "parallel_tool_calls",
        request.parallel_tool_calls,
    );
    insert_some(&mut chat, "max_tokens", request.max_output_tokens);
    insert_some(&mut chat, "temperature", request.temperature);
    insert_some(&mut chat, "top_p", request.top_p);
    insert_some(&mut chat, "user", request.user.clone());
    if let Some(format) = request.text.as_ref().and_then(response_format) {
        chat.insert("response_format".into(), format?);
    }
    if let Some(effort) = request
        .reasoning
        .as_ref()
        .and_then(|r| r.get("effort"))
        .filter(|e| !e.is_null())
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if request.is_stream() {
        chat.insert("stream".into(), true.into());
        // The bridge needs the usage for `response.completed`.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    for (key, value) in &request.extra {
        if !DROPPED.contains(&key.as_str()) && !chat.contains_key(key) {
            chat.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(chat))
}

fn insert_some(chat: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        chat.insert(key.to_owned(), value.into());
    }
}

fn refuse_stateful(request: &ResponsesRequest) -> Result<(), BridgeError> {
    const NO_STORE: &str = "Switchyard keeps no responses (stateless Responses API)";
    if request.store == Some(true) {
        return Err(BridgeError::new(
            "store",
            format!("`store: true` is not supported: {NO_STORE}; send `store: false`."),
        ));
    }
    if request.previous_response_id.is_some() {
        return Err(BridgeError::new(
            "previous_response_id",
            format!("`previous_response_id` is not supported: {NO_STORE}; send the whole conversation in `input`."),
        ));
    }
    if request.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(BridgeError::new(
            "conversation",
            format!("`conversation` is not supported: {NO_STORE}."),
        ));
    }
    if request.background == Some(true) {
        return Err(BridgeError::new(
            "background",
            format!("`background: true` is not supported: {NO_STORE}."),
        ));
    }
    Ok(())
}

fn check_ranges(request: &ResponsesRequest) -> Result<(), BridgeError> {
    if request.model.is_empty() {
        return Err(BridgeError::new("model", "`model` must not be empty."));
    }
    if request.max_output_tokens == Some(0) {
        return Err(BridgeError::new(
            "max_output_tokens",
            "`max_output_tokens` must be at least 1.",
        ));
    }
    if let Some(t) = request.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(BridgeError::new(
                "temperature",
                "`temperature` must be between 0 and 2.",
            ));
        }
    }
    if let Some(p) = request.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(BridgeError::new(
                "top_p",
                "`top_p` must be greater than 0 and at most 1.",
            ));
        }
    }
    Ok(())
}

/// Appends the chat message(s) for one input item. Consecutive `function_call` items become
/// one assistant message with several `tool_calls`, as chat expects.
fn push_item(messages: &mut Vec<Value>, item: &InputItem, i: usize) -> Result<(), BridgeError> {
    let kind = item.kind.as_deref().unwrap_or("message");
    match kind {
        "message" => messages.push(message(item, i)?),
        "function_call" => {
            let call = json!({
                "id": required(&item.call_id, i, "call_id")?,
                "type": "function",
                "function": {
                    "name": required(&item.name, i, "name")?,
                    "arguments": item.arguments.as_deref().unwrap_or("{}"),
                },
            });
            let open = messages.last_mut().filter(|m| m["role"] == "assistant");
            match open.and_then(|m| m.as_object_mut()) {
                Some(m) => {
                    let calls = m.entry("tool_calls").or_insert_with(|| json!([]));
                    if let Some(calls) = calls.as_array_mut() {
                        calls.push(call);
                    }
                }
                None => messages.push(json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [call],
                })),
            }
        }
        "function_call_output" => {
            let output = match &item.output {
                Some(content) => content_text(content, i, "output")?,
                None => return Err(missing(i, "output")),
            };
            messages.push(json!({
                "role": "tool",
                "tool_call_id": required(&item.call_id, i, "call_id")?,
                "content": output,
            }));
        }
        // Reasoning the model produced earlier: chat has no input form for it.
        "reasoning" => {}
        other => {
            return Err(BridgeError::new(
                format!("input[{i}].type"),
                format!("Input items of type `{other}` are not supported; use messages, `function_call` and `function_call_output`."),
            ))
        }
    }
    Ok(())
}

fn required<'a>(value: &'a Option<String>, i: usize, field: &str) -> Result<&'a str, BridgeError> {
    value.as_deref().ok_or_else(|| missing(i, field))
}

fn missing(i: usize, field: &str) -> BridgeError {
    BridgeError::new(
        format!("input[{i}].{field}"),
        format!("`input[{i}].{field}` is required."),
    )
}

fn message(item: &InputItem, i: usize) -> Result<Value, BridgeError> {
    let role = match item.role.as_deref() {
        Some("user") => "user",
        Some("assistant") => "assistant",
        // Chat templates of open models know `system`; `developer` means the same here.
        Some("system") | Some("developer") => "system",
        Some(other) => {
            return Err(BridgeError::new(
                format!("input[{i}].role"),
                format!("`{other}` is not a valid role; use user, assistant, system or developer."),
            ))
        }
        None => return Err(missing(i, "role")),
    };
    let content = match &item.content {
        Some(InputContent::Text(text)) => Value::from(text.as_str()),
        Some(InputContent::Parts(parts)) => chat_parts(parts, i)?,
        None => return Err(missing(i, "content")),
    };
    Ok(json!({"role": role, "content": content}))
}

/// Content parts in chat's shape; a text-only list collapses to a string (what every chat
/// template handles).
fn chat_parts(parts: &[InputPart], i: usize) -> Result<Value, BridgeError> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = || format!("input[{i}].content[{j}]");
        match part.kind.as_str() {
            "input_text" | "output_text" | "text" => {
                let text = part.text.as_deref().ok_or_else(|| {
                    BridgeError::new(param(), format!("`{}.text` is required.", param()))
                })?;
                out.push(json!({"type": "text", "text": text}));
            }
            "refusal" => {}
            "input_image" => {
                let url = part.image_url.as_deref().ok_or_else(|| {
                    BridgeError::new(
                        param(),
                        "Only images given by `image_url` are supported (no `file_id`).",
                    )
                })?;
                let mut image = json!({"url": url});
                if let Some(detail) = &part.detail {
                    image["detail"] = detail.clone().into();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            other => {
                return Err(BridgeError::new(
                    format!("{}.type", param()),
                    format!("Content parts of type `{other}` are not supported."),
                ))
            }
        }
    }
    if out.iter().all(|p| p["type"] == "text") {
        let text: String = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(Value::String(text));
    }
    Ok(Value::Array(out))
}

fn content_text(content: &InputContent, i: usize, field: &str) -> Result<String, BridgeError> {
    match content {
        InputContent::Text(text) => Ok(text.clone()),
        InputContent::Parts(parts) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("input_text" | "output_text" | "text", Some(t)) => text.push_str(t),
                    _ => {
                        return Err(BridgeError::new(
                            format!("input[{i}].{field}"),
                            "Only text tool outputs are supported.",
                        ))
                    }
                }
            }
            Ok(text)
        }
    }
}

fn chat_tools(tools: &[ResponsesTool]) -> Result<Value, BridgeError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(BridgeError::new(
                format!("tools[{i}].type"),
                format!(
                    "Built-in tools (`{}`) are not supported; only `function` tools are.",
                    tool.kind
                ),
            ));
        }
        let Some(name) = &tool.name else {
            return Err(BridgeError::new(
                format!("tools[{i}].name"),
                format!("`tools[{i}].name` is required."),
            ));
        };
        let mut function = json!({"name": name});
        if let Some(d) = &tool.description {
            function["description"] = d.clone().into();
        }
        if let Some(p) = &tool.parameters {
            function["parameters"] = p.clone();
        }
        if let Some(s) = tool.strict {
            function["strict"] = s.into();
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

fn chat_tool_choice(choice: &Value) -> Result<Value, BridgeError> {
    let bad = || {
        BridgeError::new(
            "tool_choice",
            "`tool_choice` must be `none`, `auto`, `required` or {\"type\":\"function\",\"name\":...}.",
        )
    };
    match choice {
        Value::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type") == Some(&Value::from("function")) => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(bad)?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(bad()),
    }
}

/// `text.format` as chat's `response_format`; `None` for plain text.
fn response_format(text: &TextConfig) -> Option<Result<Value, BridgeError>> {
    let format = text.format.as_ref()?;
    Some(match format.kind.as_str() {
        "text" => return None,
        "json_object" => Ok(json!({"type": "json_object"})),
        "json_schema" => {
            let mut schema = json!({
                "name": format.name.as_deref().unwrap_or("response"),
                "schema": format.schema.clone().unwrap_or_else(|| json!({})),
            });
            if let Some(strict) = format.strict {
                schema["strict"] = strict.into();
            }
            if let Some(d) = &format.description {
                schema["description"] = d.clone().into();
            }
            Ok(json!({"type": "json_schema", "json_schema": schema}))
        }
        other => Err(BridgeError::new(
            "text.format.type",
            format!("`text.format.type` `{other}` is not supported."),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<Value, BridgeError> {
        to_chat(&serde_json::from_value(body).unwrap())
    }

    #[test]
    fn a_string_input_becomes_one_user_message_after_the_instructions() {
        let c = chat(json!({"model":"m","input":"hi","instructions":"be brief",
            "max_output_tokens":5,"temperature":0.5,"stream":true,"top_k":3}))
        .unwrap();
        assert_eq!(
            c["messages"],
            json!([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}])
        );
        assert_eq!(c["max_tokens"], 5);
        assert_eq!(c["temperature"], 0.5);
        assert_eq!(c["stream_options"]["include_usage"], true);
        assert_eq!(c["top_k"], 3, "unknown fields reach the worker");
    }

    #[test]
    fn a_tool_round_trip_becomes_tool_calls_and_tool_messages() {
        let c = chat(json!({"model":"m","input":[
            {"role":"user","content":[{"type":"input_text","text":"weather?"}]},
            {"type":"function_call","call_id":"c1","name":"get","arguments":"{\"x\":1}"},
            {"type":"function_call","call_id":"c2","name":"get","arguments":"{}"},
            {"type":"function_call_output","call_id":"c1","output":"sunny"},
            {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"rain"}]}
        ],"tools":[{"type":"function","name":"get","parameters":{"type":"object"},"strict":true}],
        "tool_choice":{"type":"function","name":"get"}}))
        .unwrap();
        let m = c["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], json!({"role":"user","content":"weather?"}));
        assert_eq!(m[1]["tool_calls"].as_array().unwrap().len(), 2);
        assert_eq!(m[1]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(
            m[2],
            json!({"role":"tool","tool_call_id":"c1","content":"sunny"})
        );
        assert_eq!(m[3]["content"], "rain");
        assert_eq!(c["tools"][0]["function"]["name"], "get");
        assert_eq!(c["tools"][0]["function"]["strict"], true);
        assert_eq!(c["tool_choice"]["function"]["name"], "get");
    }

    #[test]
    fn images_and_json_schema_translate() {
        let c = chat(json!({"model":"m","input":[{"type":"message","role":"developer","content":[
            {"type":"input_text","text":"look"},
            {"type":"input_image","image_url":"data:image/png;base64,AA","detail":"low"}]}],
            "text":{"format":{"type":"json_schema","name":"r","schema":{"type":"object"},"strict":true}},
            "reasoning":{"effort":"low"}}))
        .unwrap();
        assert_eq!(c["messages"][0]["role"], "system");
        assert_eq!(c["messages"][0]["content"][1]["image_url"]["detail"], "low");
        assert_eq!(c["response_format"]["json_schema"]["name"], "r");
        assert_eq!(c["reasoning_effort"], "low");
    }

    #[test]
    fn stateful_and_unsupported_requests_name_the_field() {
        for (body, param) in [
            (json!({"model":"m","input":"x","store":true}), "store"),
            (
                json!({"model":"m","input":"x","previous_response_id":"resp_1"}),
                "previous_response_id",
            ),
            (
                json!({"model":"m","input":"x","background":true}),
                "background",
            ),
            (
                json!({"model":"m","input":"x","tools":[{"type":"web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model":"m","input":[{"type":"item_reference","id":"x"}]}),
                "input[0].type",
            ),
            (
                json!({"model":"m","input":[{"role":"bogus","content":"x"}]}),
                "input[0].role",
            ),
            (
                json!({"model":"m","input":"x","temperature":3}),
                "temperature",
            ),
            (json!({"model":"m","input":"x","top_p":0}), "top_p"),
            (
                json!({"model":"m","input":"x","max_output_tokens":0}),
                "max_output_tokens",
            ),
            (
                json!({"model":"m","input":"x","tool_choice":"sometimes"}),
                "tool_choice",
            ),
            (json!({"model":"m","input":[]}), "input"),
            (
                json!({"model":"m","input":[{"type":"function_call_output","output":"x"}]}),
                "input[0].call_id",
            ),
        ] {
            let e = chat(body.clone()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
        }
        assert!(chat(json!({"model":"m","input":"x","store":false})).is_ok());
    }
}
