//! Stage 1 — parse: read the body within limits and decode the typed OpenAI request.
//!
//! The raw bytes are kept: a request that needs no rewriting is forwarded byte for byte, so
//! fields Switchyard does not know reach the worker exactly as the client wrote them.

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use switchyard_protocol::{ChatCompletionRequest, CompletionRequest, EmbeddingRequest};

use super::Endpoint;
use crate::error::ApiError;

/// The typed request, by endpoint.
#[derive(Debug, Clone)]
pub enum TypedRequest {
    Chat(ChatCompletionRequest),
    Completion(CompletionRequest),
    Embedding(EmbeddingRequest),
}

/// A request that passed parsing and validation.
#[derive(Debug)]
pub struct ParsedRequest {
    pub endpoint: Endpoint,
    pub raw: Bytes,
    pub typed: TypedRequest,
    pub headers: HeaderMap,
}

impl ParsedRequest {
    pub fn model(&self) -> &str {
        match &self.typed {
            TypedRequest::Chat(r) => &r.model,
            TypedRequest::Completion(r) => &r.model,
            TypedRequest::Embedding(r) => &r.model,
        }
    }

    pub fn is_stream(&self) -> bool {
        match &self.typed {
            TypedRequest::Chat(r) => r.is_stream(),
            TypedRequest::Completion(r) => r.is_stream(),
            TypedRequest::Embedding(_) => false,
        }
    }

    pub fn include_usage(&self) -> bool {
        match &self.typed {
            TypedRequest::Chat(r) => r.include_usage(),
            TypedRequest::Completion(r) => r.include_usage(),
            TypedRequest::Embedding(_) => false,
        }
    }
}

/// Reads and decodes the body of `parts`/`body` for `endpoint`. Generic over the body so
/// the edge can wrap the connection's body in timeouts.
pub async fn parse<B>(
    headers: HeaderMap,
    body: B,
    endpoint: Endpoint,
    max_body_bytes: usize,
) -> Result<ParsedRequest, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let raw = read_body(&headers, body, max_body_bytes).await?;
    let typed = decode(endpoint, &raw)?;
    Ok(ParsedRequest {
        endpoint,
        raw,
        typed,
        headers,
    })
}

/// Reads the whole body within `max_body_bytes` (413 beyond), after checking that it claims
/// to be JSON. The agent APIs read their bodies through here too, then decode their own types.
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    max_body_bytes: usize,
) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    check_content_type(headers)?;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max_body_bytes as u64 {
            return Err(ApiError::payload_too_large(max_body_bytes));
        }
    }
    let raw = Limited::new(body, max_body_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::payload_too_large(max_body_bytes)
            } else {
                ApiError::invalid_request(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    Ok(raw)
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(()); // many clients omit it for JSON; the body is still validated
    };
    let text = value.to_str().unwrap_or("");
    let mime = text.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(text))
    }
}

/// Decodes and validates the body for `endpoint`.
pub fn decode(endpoint: Endpoint, raw: &[u8]) -> Result<TypedRequest, ApiError> {
    require_object(raw)?;
    let typed = match endpoint {
        Endpoint::Chat => TypedRequest::Chat(from_json(raw)?),
        Endpoint::Completions => TypedRequest::Completion(from_json(raw)?),
        Endpoint::Embeddings => TypedRequest::Embedding(from_json(raw)?),
    };
    validate(&typed)?;
    Ok(typed)
}

/// Refuses a body that is not a JSON object before serde sees it (a clear message rather
/// than "invalid type: sequence").
pub fn require_object(raw: &[u8]) -> Result<(), ApiError> {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::invalid_request(if first.is_none() {
            "The request body is empty; expected a JSON object.".to_owned()
        } else {
            "The request body must be a JSON object.".to_owned()
        }));
    }
    Ok(())
}

/// Deserializes; on failure re-runs with path tracking to name the offending field.
pub fn from_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(raw).map_err(|_| {
        let mut de = serde_json::Deserializer::from_slice(raw);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let message = match inner.classify() {
                    serde_json::error::Category::Data if path != "." => {
                        format!("Invalid value for `{path}`: {inner}")
                    }
                    serde_json::error::Category::Data => format!("Invalid request: {inner}"),
                    _ => format!("Invalid JSON: {inner}"),
                };
                let err = ApiError::invalid_request(message);
                if path == "." {
                    err
                } else {
                    err.with_param(path)
                }
            }
            Ok(_) => ApiError::invalid_request("Invalid JSON body."),
        }
    })
}

fn validate(typed: &TypedRequest) -> Result<(), ApiError> {
    let model = match typed {
        TypedRequest::Chat(r) => {
            if r.messages.is_empty() {
                return Err(ApiError::invalid_request("`messages` must not be empty.")
                    .with_param("messages"));
            }
            super::validate::chat(r)?;
            &r.model
        }
        TypedRequest::Completion(r) => &r.model,
        TypedRequest::Embedding(r) => &r.model,
    };
    if model.is_empty() {
        return Err(ApiError::invalid_request("`model` must not be empty.").with_param("model"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(endpoint: Endpoint, body: &str) -> ApiError {
        decode(endpoint, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn non_objects_and_bad_json_are_400() {
        for body in [
            "",
            "  ",
            "[1]",
            "\"x\"",
            "null",
            "42",
            "{",
            "{\"model\":",
            "\u{feff}{}",
        ] {
            assert_eq!(err(Endpoint::Chat, body).status, 400, "{body:?}");
        }
    }

    #[test]
    fn missing_and_ill_typed_fields_name_the_param() {
        let e = err(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user","content":1}]}"#,
        );
        assert_eq!(e.status, 400);
        let e = err(
            Endpoint::Chat,
            r#"{"model":"m","messages":[],"max_tokens":"ten"}"#,
        );
        assert_eq!(e.param.as_deref(), Some("max_tokens"), "{e:?}");
        let e = err(
            Endpoint::Chat,
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
        );
        assert!(e.message.contains("model"), "{e:?}");
        let e = err(Endpoint::Chat, r#"{"model":"m","messages":[]}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = err(Endpoint::Completions, r#"{"model":"","prompt":"x"}"#);
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = err(Endpoint::Embeddings, r#"{"model":"m","input":{"a":1}}"#);
        assert_eq!(e.status, 400);
    }

    #[test]
    fn deep_nesting_and_huge_numbers_are_400_not_a_crash() {
        let deep = format!(
            r#"{{"model":"m","messages":[],"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(err(Endpoint::Chat, &deep).status, 400);
        let e = err(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"u","content":"x"}],"max_tokens":1e400}"#,
        );
        assert_eq!(e.status, 400);
        let e = err(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"u","content":"x"}],"temperature":NaN}"#,
        );
        assert_eq!(e.status, 400);
        assert_eq!(
            decode(Endpoint::Chat, b"{\"model\":\"m\xff\"}")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn a_valid_request_keeps_unknown_fields() {
        let TypedRequest::Chat(r) = decode(
            Endpoint::Chat,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_k":3}"#,
        )
        .unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(r.extra["top_k"], 3);
    }
}
