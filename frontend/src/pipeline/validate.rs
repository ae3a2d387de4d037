//! Chat request validation before dispatch: the standard OpenAI parameters are checked for
//! type and range, so a request a worker would reject (or, worse, silently misread) costs
//! no worker anything and gets a 400 naming the parameter. Unknown parameters are not
//! checked: they are the worker's (vLLM's `top_k`, SGLang's `regex`, ...).

use serde_json::Value;
use switchyard_protocol::ChatCompletionRequest;

use crate::error::ApiError;

/// Roles a chat message may have (`function` is the legacy form of `tool`).
const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Number parameters and their inclusive ranges (`top_p` excludes 0, checked below).
const RANGES: &[(&str, f64, f64)] = &[
    ("temperature", 0.0, 2.0),
    ("top_p", 0.0, 1.0),
    ("presence_penalty", -2.0, 2.0),
    ("frequency_penalty", -2.0, 2.0),
];

pub fn chat(request: &ChatCompletionRequest) -> Result<(), ApiError> {
    if request.n == Some(0) {
        return Err(invalid("n", "`n` must be at least 1."));
    }
    for field in ["max_tokens", "max_completion_tokens"] {
        let value = match field {
            "max_tokens" => request.max_tokens,
            _ => request.max_completion_tokens,
        };
        if value == Some(0) {
            return Err(invalid(field, &format!("`{field}` must be at least 1.")));
        }
    }
    for (i, message) in request.messages.iter().enumerate() {
        if !ROLES.contains(&message.role.as_str()) {
            return Err(invalid(
                &format!("messages[{i}].role"),
                &format!(
                    "`{}` is not a valid role; use one of {}.",
                    message.role,
                    ROLES.join(", ")
                ),
            ));
        }
    }
    for (field, low, high) in RANGES {
        let Some(value) = small(request, field).filter(|v| !v.is_null()) else {
            continue;
        };
        let in_range = value
            .as_f64()
            .is_some_and(|x| x >= *low && x <= *high && !(*field == "top_p" && x == 0.0));
        if !in_range {
            let range = if *field == "top_p" {
                "greater than 0 and at most 1".to_owned()
            } else {
                format!("between {low} and {high}")
            };
            return Err(invalid(
                field,
                &format!("`{field}` must be a number {range}, got {value}."),
            ));
        }
    }
    typed(request, "logprobs", "a boolean", Value::is_boolean)?;
    typed(request, "top_logprobs", "an integer from 0 to 20", |v| {
        v.as_u64().is_some_and(|n| n <= 20)
    })?;
    typed(request, "stop", "a string or an array of strings", |v| {
        v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    })?;
    // Structured fields may be large: their kind is read off the first byte of the raw text
    // (serde_json already checked it is well-formed JSON), without building a tree.
    shaped(request, "tools", "an array", |c| c == b'[')?;
    shaped(request, "tool_choice", "a string or an object", |c| {
        c == b'"' || c == b'{'
    })?;
    shaped(request, "response_format", "an object", |c| c == b'{')?;
    shaped(request, "user", "a string", |c| c == b'"')?;
    Ok(())
}

/// Largest unknown field parsed into a `Value` for a check; scalars and stop lists are far
/// smaller, and a bigger one is refused rather than expanded into a tree.
const SMALL_FIELD: usize = 64 * 1024;

/// A small field of `extra` as a `Value`; an oversized one reads as a JSON string naming
/// its size, so the type checks below refuse it with a clear message.
fn small(request: &ChatCompletionRequest, field: &str) -> Option<Value> {
    let raw = request.extra.get(field)?;
    Some(
        request
            .extra
            .small_value(field, SMALL_FIELD)
            .unwrap_or_else(|| Value::String(format!("<{} bytes>", raw.get().len()))),
    )
}

/// Checks the JSON kind of an optional, possibly large parameter (null counts as absent).
fn shaped(
    request: &ChatCompletionRequest,
    field: &str,
    what: &str,
    ok: impl Fn(u8) -> bool,
) -> Result<(), ApiError> {
    let Some(raw) = request.extra.get(field) else {
        return Ok(());
    };
    let first = raw
        .get()
        .trim_start()
        .as_bytes()
        .first()
        .copied()
        .unwrap_or(b'n');
    if first == b'n' || ok(first) {
        return Ok(());
    }
    let shown: String = raw.get().chars().take(40).collect();
    Err(invalid(
        field,
        &format!("`{field}` must be {what}, got {shown}."),
    ))
}

/// Checks an optional parameter kept in `extra` (null counts as absent).
fn typed(
    request: &ChatCompletionRequest,
    field: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Result<(), ApiError> {
    match small(request, field) {
        Some(value) if !value.is_null() && !ok(&value) => Err(invalid(
            field,
            &format!("`{field}` must be {what}, got {value}."),
        )),
        _ => Ok(()),
    }
}

fn invalid(param: &str, message: &str) -> ApiError {
    ApiError::invalid_request(message).with_param(param)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: &str) -> Result<(), ApiError> {
        let body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{extra}}}"#);
        chat(&serde_json::from_str(&body).unwrap())
    }

    #[test]
    fn valid_requests_pass_with_unknown_fields() {
        for ok in [
            "",
            r#","n":2,"temperature":0,"top_p":1,"presence_penalty":-2"#,
            r#","temperature":null,"stop":["a","b"],"logprobs":true,"top_logprobs":5"#,
            r#","tools":[],"tool_choice":"auto","top_k":40,"regex":"a+""#,
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn each_invalid_parameter_is_named() {
        for (extra, param) in [
            (r#","n":0"#, "n"),
            (r#","temperature":"hot""#, "temperature"),
            (r#","temperature":2.5"#, "temperature"),
            (r#","top_p":0"#, "top_p"),
            (r#","frequency_penalty":3"#, "frequency_penalty"),
            (r#","max_tokens":0"#, "max_tokens"),
            (r#","max_completion_tokens":0"#, "max_completion_tokens"),
            (r#","logprobs":"yes""#, "logprobs"),
            (r#","top_logprobs":21"#, "top_logprobs"),
            (r#","stop":[1]"#, "stop"),
            (r#","tools":{}"#, "tools"),
            (r#","tool_choice":1"#, "tool_choice"),
        ] {
            let e = check(extra).unwrap_err();
            assert_eq!(
                (e.status, e.param.as_deref()),
                (400, Some(param)),
                "{extra}"
            );
            assert_eq!(e.kind, "invalid_request_error");
        }
        let bad_role: ChatCompletionRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"bogus","content":"y"}]}"#,
        )
        .unwrap();
        let e = chat(&bad_role).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[1].role"));
    }
}
