//! Stage 1 — parse: read the body within limits and decode the typed OpenAI request.
//!
//! The raw bytes are kept: a request that needs no rewriting is forwarded byte for byte, so
//! fields Switchyard does not know reach the worker exactly as the client wrote them.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use switchyard_protocol::{ChatCompletionRequest, CompletionRequest, EmbeddingRequest};

use super::body_budget::{BodyBudget, BodyReservation};
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
    /// This body's share of `limits.max_inflight_body_bytes`, returned when the request is
    /// dropped.
    pub reservation: BodyReservation,
    /// For an agent-API request translated onto chat: the client's own request, sent as is
    /// to instances that serve that API natively ([`super::native`]).
    pub native: Option<super::native::NativeRequest>,
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

    /// The most tokens the request may generate, when it says (`max_completion_tokens`
    /// or `max_tokens`); what a tenant's token rate reserves up front.
    pub fn output_limit(&self) -> Option<u32> {
        match &self.typed {
            TypedRequest::Chat(r) => r.output_limit(),
            TypedRequest::Completion(r) => r.max_tokens,
            TypedRequest::Embedding(_) => None,
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

/// Reads and decodes the body of `parts`/`body` for `endpoint`, charging it to `budget`
/// before reading. Generic over the body so the edge can wrap the connection's body in
/// timeouts.
pub async fn parse<B>(
    headers: HeaderMap,
    body: B,
    endpoint: Endpoint,
    max_body_bytes: usize,
    budget: &BodyBudget,
) -> Result<ParsedRequest, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (raw, reservation) = read_body(&headers, body, max_body_bytes, budget).await?;
    let typed = decode(endpoint, &raw)?;
    Ok(ParsedRequest {
        endpoint,
        raw,
        typed,
        headers,
        reservation,
        native: None,
    })
}

/// Reads the whole body into one buffer, after checking that it claims to be JSON (the agent
/// APIs read their bodies through here too, then decode their own types). The budget is
/// reserved before the bytes are read: all of `Content-Length` up front, or for a chunked body
/// in doubling steps that match the buffer's growth. One copy: frames are appended to a buffer
/// sized from `Content-Length`.
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    max_body_bytes: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyReservation), ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    check_content_type(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let declared = declared
        .map(|len| {
            usize::try_from(len)
                .ok()
                .filter(|len| *len <= max_body_bytes)
                .ok_or_else(|| ApiError::payload_too_large(max_body_bytes))
        })
        .transpose()?;
    let mut reservation = BodyReservation::default();
    // Most bodies arrive in one frame: that frame is kept as is (no copy); only a second
    // frame starts a buffer, sized from `Content-Length` when there is one.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut body = std::pin::pin!(body);
    if let Some(len) = declared {
        if let Err(refused) = budget.reserve(&mut reservation, len).await {
            drain(body.as_mut(), max_body_bytes).await;
            return Err(refused);
        }
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::invalid_request(format!("could not read the request body: {}", e.into()))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we use
        };
        let have = first.as_ref().map_or(0, Bytes::len) + buf.len();
        let len = have + data.len();
        if len > max_body_bytes {
            return Err(ApiError::payload_too_large(max_body_bytes));
        }
        if len > reservation.bytes() {
            let step = len.max(reservation.bytes() * 2).min(max_body_bytes);
            if let Err(refused) = budget.reserve(&mut reservation, step).await {
                drop((first, buf));
                drop(reservation);
                drain(body.as_mut(), max_body_bytes - len).await;
                return Err(refused);
            }
        }
        if have == 0 {
            first = Some(data);
            continue;
        }
        if let Some(head) = first.take() {
            buf.reserve(declared.unwrap_or(0).max(len));
            buf.extend_from_slice(&head);
        }
        buf.extend_from_slice(&data);
    }
    let raw = match first {
        Some(only) => only,
        None => buf.freeze(),
    };
    Ok((raw, reservation))
}

/// Reads and discards up to `limit` more body bytes. A refused body is drained, not kept,
/// so the client — which usually sends its whole body before it reads — gets the 503
/// instead of a reset connection. The body timeouts around `parse` bound the time.
async fn drain<B>(mut body: std::pin::Pin<&mut B>, limit: usize)
where
    B: http_body::Body<Data = Bytes>,
{
    let mut left = limit;
    while let Some(Ok(frame)) = body.frame().await {
        let n = frame.data_ref().map_or(0, Bytes::len);
        if n > left {
            return; // over the size limit: the connection is closed instead
        }
        left -= n;
    }
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
mod budget_tests {
    use std::time::Duration;

    use super::*;
    use http::HeaderValue;
    use http_body::Frame;
    use http_body_util::StreamBody;

    type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

    fn chunks(parts: &[&'static str]) -> StreamBody<impl futures_util::Stream<Item = Chunk>> {
        let frames: Vec<Chunk> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    fn declared(len: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h
    }

    const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;

    #[tokio::test(start_paused = true)]
    async fn a_declared_body_over_the_budget_is_refused_and_drained_not_kept() {
        let budget = BodyBudget::new(100, Duration::from_millis(50));
        let mut other = BodyReservation::default();
        budget.reserve(&mut other, 90).await.unwrap();
        let body = chunks(&[&BODY[..20]]);
        let err = parse(declared(20), body, Endpoint::Chat, 100, &budget)
            .await
            .unwrap_err();
        assert_eq!((err.status, err.code), (503, Some("body_budget_exhausted")));
        assert_eq!(budget.in_use(), 90);
    }

    #[tokio::test]
    async fn a_declared_body_reserves_its_length_until_the_request_is_dropped() {
        let budget = BodyBudget::new(1000, Duration::from_millis(1));
        let body = chunks(&[&BODY[..10], &BODY[10..]]);
        let request = parse(declared(BODY.len()), body, Endpoint::Chat, 1000, &budget)
            .await
            .unwrap();
        assert_eq!(request.raw, BODY.as_bytes());
        assert_eq!(budget.in_use(), BODY.len());
        drop(request);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_chunked_body_reserves_as_it_grows_and_stops_at_the_size_limit() {
        let budget = BodyBudget::new(1000, Duration::from_millis(1));
        let body = chunks(&[&BODY[..5], &BODY[5..20], &BODY[20..]]);
        let request = parse(HeaderMap::new(), body, Endpoint::Chat, 1000, &budget)
            .await
            .unwrap();
        let held = request.reservation.bytes();
        assert!(held >= BODY.len() && held <= 2 * BODY.len(), "{held}");
        assert_eq!(budget.in_use(), held);
        drop(request);

        let too_big = chunks(&[BODY, BODY]);
        let err = parse(
            HeaderMap::new(),
            too_big,
            Endpoint::Chat,
            BODY.len() + 1,
            &budget,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, 413);
        assert_eq!(budget.in_use(), 0);
        let declared_too_big = parse(declared(2000), chunks(&[]), Endpoint::Chat, 1000, &budget)
            .await
            .unwrap_err();
        assert_eq!(declared_too_big.status, 413);
    }
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
        assert_eq!(r.extra["top_k"].get(), "3");
    }
}
