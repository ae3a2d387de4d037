//! Workers' in-band error events: a stream that already answered 200 reports a failure as
//! `data: {"error":{…}}` (vLLM, SGLang; older vLLM: `{"object":"error","message":…}`),
//! usually followed by `[DONE]`. Relayed as an ordinary chunk, such a stream would look
//! successful to health and migration, so dispatch and the relay classify every event.
//!
//! An error whose `code` is a 4xx status is the request's fault (as a 4xx response would be):
//! it is passed to the client and does not count against the instance. Anything else is a
//! failure of the instance: retried before the first byte, migrated (or ended with our own
//! in-band error) after it.

use serde_json::Value;

/// A worker's error event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InbandError {
    pub message: String,
    /// The worker blamed the request (a 4xx `code`): pass it on, do not count it.
    pub request_fault: bool,
}

/// Classifies one event payload; `None` for anything that is not an error event. Costs one
/// substring search for ordinary chunks.
pub fn classify(data: &[u8]) -> Option<InbandError> {
    if !switchyard_protocol::json_key::ERROR.in_bytes(data) {
        return None;
    }
    let value: Value = serde_json::from_slice(data).ok()?;
    let object = value.as_object()?;
    let error = match object.get("error") {
        Some(Value::Null) | None if object.get("object") == Some(&Value::from("error")) => &value,
        Some(Value::Null) | None => return None,
        Some(error) => error,
    };
    let message = match error {
        Value::String(message) => message.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned(),
    };
    let code = error.get("code").and_then(|c| match c {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    });
    Some(InbandError {
        message,
        request_fault: code.is_some_and(|c| (400..500).contains(&c)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_events_of_each_shape_are_recognised() {
        let vllm = classify(br#"{"error":{"object":"error","message":"engine died","type":"InternalServerError","param":null,"code":500}}"#);
        assert_eq!(
            vllm,
            Some(InbandError {
                message: "engine died".into(),
                request_fault: false
            })
        );
        let old = classify(
            br#"{"object":"error","message":"too long","type":"BadRequestError","code":400}"#,
        );
        assert_eq!(
            old,
            Some(InbandError {
                message: "too long".into(),
                request_fault: true
            })
        );
        let bare = classify(br#"{"error":"boom"}"#).unwrap();
        assert_eq!((bare.message.as_str(), bare.request_fault), ("boom", false));
        assert!(
            classify(br#"{"error":{"message":"m","code":"429"}}"#).is_some_and(|e| e.request_fault)
        );
    }

    #[test]
    fn ordinary_chunks_are_not_errors() {
        for chunk in [
            &br#"{"choices":[{"index":0,"delta":{"content":"error"}}]}"#[..],
            br#"{"choices":[{"index":0,"text":"\"error\""}],"error":null}"#,
            br#"{"choices":[{"index":0,"text":" a"}]}"#,
            b"not json \"error\"",
        ] {
            assert_eq!(classify(chunk), None, "{}", String::from_utf8_lossy(chunk));
        }
    }
}
