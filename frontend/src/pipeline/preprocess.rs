//! Stage 2 — preprocess: what routing needs to know about the request (session key, prefix
//! block hashes) and the body each kind of worker gets.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use switchyard_kv::{BlockHash, PromptHasher, PromptKind};
use switchyard_protocol::completion::Prompt;
use switchyard_runtime::{ChatTemplate, Instance, WorkerApi};

use super::parse::{ParsedRequest, TypedRequest};
use super::Endpoint;
use crate::app::{App, ModelRouting};
use crate::error::ApiError;
use crate::translate;

/// Routing inputs plus lazily built upstream bodies (each built at most once per request,
/// however many instances are tried).
#[derive(Debug, Default)]
pub struct Prepared {
    pub session_key: Option<String>,
    pub block_hashes: Vec<BlockHash>,
    /// Set only for models that disaggregate ([`super::pd::before_routing`]).
    pub pd: Option<super::pd::Snapshot>,
    /// The TTFT target routed against ([`crate::predict::slo`]).
    pub ttft_slo_ms: Option<f64>,
    /// The `kv` policy's per-candidate TTFT predictions, for dispatch to learn from.
    pub decision: switchyard_runtime::policy::ttft::DecisionSlot,
    native: OnceLock<Bytes>,
    translated: OnceLock<Result<Bytes, String>>,
}

/// The prefix hasher when the model's routing uses prefix blocks (the `kv` policy, or Wasm
/// plugins, which see cached-prefix blocks); `None` keeps the hot path free of rendering and
/// hashing for every other policy.
pub fn hasher_for<'a>(
    app: &'a App,
    routing: &ModelRouting,
    model: &str,
) -> Option<&'a PromptHasher> {
    let needed = routing.policy.name() == "kv" || app.plugins.table().routes(model);
    needed.then(|| app.prompt_hashers.get(model))
}

/// Chained block hashes of the rendered prompt: the same text the mocker hashes (chat: the
/// messages through the default chat template; completions: the prompt text), over token ids
/// when the model has a tokenizer.
pub fn prompt_block_hashes(request: &ParsedRequest, hasher: &PromptHasher) -> Vec<BlockHash> {
    static TEMPLATE: OnceLock<ChatTemplate> = OnceLock::new();
    match &request.typed {
        TypedRequest::Chat(chat) => TEMPLATE
            .get_or_init(ChatTemplate::default)
            .render(&chat.messages)
            // A template error is reported when the request is sent; routing just goes
            // without prefix information.
            .map(|text| hasher.hash(&text, PromptKind::Chat).hashes)
            .unwrap_or_default(),
        TypedRequest::Completion(c) => match &c.prompt {
            Prompt::Text(text) => hasher.hash(text, PromptKind::Completion).hashes,
            other => hasher.hash(&other.as_text(), PromptKind::Completion).hashes,
        },
        TypedRequest::Embedding(_) => Vec::new(),
    }
}

/// Extracts what the model's routing needs (`hasher`: see [`hasher_for`]).
pub fn prepare(
    request: &ParsedRequest,
    routing: &ModelRouting,
    hasher: Option<&PromptHasher>,
) -> Prepared {
    let session_key = request
        .headers
        .get(&routing.session_header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let block_hashes = hasher
        .map(|h| prompt_block_hashes(request, h))
        .unwrap_or_default();
    Prepared {
        session_key,
        block_hashes,
        ..Prepared::default()
    }
}

/// What to send to one instance: the path on the worker and the body.
pub struct UpstreamRequest {
    pub endpoint: Endpoint,
    pub body: Bytes,
    /// The worker answers in completions shape and the relay translates back to chat.
    pub translated: bool,
    /// The client's agent-API request, relayed as sent: the worker answers in that API.
    pub native: Option<switchyard_runtime::Api>,
    /// Client headers the worker gets too (a native request's API version); empty otherwise.
    pub forward: super::native::Forwarded,
}

impl Prepared {
    pub fn upstream_request(
        &self,
        request: &ParsedRequest,
        instance: &Instance,
    ) -> Result<UpstreamRequest, ApiError> {
        if let Some(native) = super::native::upstream_request(request, instance) {
            return Ok(native);
        }
        if let (TypedRequest::Chat(chat), WorkerApi::Completions, Some(template)) =
            (&request.typed, instance.spec.api, &instance.template)
        {
            let body = self
                .translated
                .get_or_init(|| translate::chat_to_completion(chat, template))
                .clone()
                .map_err(|e| {
                    ApiError::invalid_request(format!("Cannot apply the chat template: {e}"))
                })?;
            return Ok(UpstreamRequest {
                endpoint: Endpoint::Completions,
                body,
                translated: true,
                native: None,
                forward: Vec::new(),
            });
        }
        let body = self.native.get_or_init(|| native_body(request)).clone();
        Ok(UpstreamRequest {
            endpoint: request.endpoint,
            body,
            translated: false,
            native: None,
            forward: Vec::new(),
        })
    }
}

/// The client's bytes, except that streams always ask the worker for usage (so token metrics
/// are exact); the relay drops the usage chunk again if the client did not ask for it.
fn native_body(request: &ParsedRequest) -> Bytes {
    if !request.is_stream() || request.include_usage() {
        return request.raw.clone();
    }
    if matches!(request.typed, TypedRequest::Embedding(_)) {
        return request.raw.clone();
    }
    let raw = &request.raw;
    if switchyard_protocol::json_key::STREAM_OPTIONS.in_bytes(raw) {
        // The key is there (an object without include_usage, or null): edit it in place.
        return with_stream_usage(raw).unwrap_or_else(|| raw.clone());
    }
    // No `stream_options` key: splice one in after the opening brace (parse guaranteed one).
    let Some(brace) = raw.iter().position(|&b| b == b'{') else {
        return raw.clone();
    };
    const OPTIONS: &[u8] = br#""stream_options":{"include_usage":true},"#;
    let mut out = BytesMut::with_capacity(raw.len() + OPTIONS.len());
    out.extend_from_slice(&raw[..=brace]);
    out.extend_from_slice(OPTIONS);
    out.extend_from_slice(&raw[brace + 1..]);
    out.freeze()
}

/// `raw` with `stream_options.include_usage` set to true. Every other value keeps its exact
/// text (raw JSON values, so numbers beyond `f64` and explicit nulls survive); only the order
/// of the top-level keys may change.
fn with_stream_usage(raw: &[u8]) -> Option<Bytes> {
    use std::collections::BTreeMap;

    use serde_json::value::{to_raw_value, RawValue};

    let mut top: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(raw).ok()?;
    let mut options: BTreeMap<String, Box<RawValue>> = match top.get("stream_options") {
        Some(v) if v.get() == "null" => BTreeMap::new(),
        Some(v) => serde_json::from_str(v.get()).ok()?,
        None => BTreeMap::new(),
    };
    options.insert("include_usage".into(), to_raw_value(&true).ok()?);
    top.insert("stream_options".into(), to_raw_value(&options).ok()?);
    serde_json::to_vec(&top).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::decode;
    use http::HeaderMap;
    use serde_json::Value;

    fn parsed(endpoint: Endpoint, body: &str) -> ParsedRequest {
        ParsedRequest {
            endpoint,
            raw: Bytes::copy_from_slice(body.as_bytes()),
            typed: decode(endpoint, body.as_bytes()).unwrap(),
            headers: HeaderMap::new(),
            reservation: Default::default(),
            native: None,
        }
    }

    #[test]
    fn non_stream_bodies_are_forwarded_byte_for_byte() {
        let body = r#"{"model":"m", "messages":[{"role":"user","content":"x"}],"x_big":123456789012345678901234567890}"#;
        assert_eq!(native_body(&parsed(Endpoint::Chat, body)), body.as_bytes());
    }

    #[test]
    fn streams_ask_for_usage_without_losing_fields() {
        let body =
            r#" {"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"top_k":2}"#;
        let out = native_body(&parsed(Endpoint::Chat, body));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["top_k"], 2);

        let body = r#"{"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":false,"extra":1}}"#;
        let v: Value =
            serde_json::from_slice(&native_body(&parsed(Endpoint::Completions, body))).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["extra"], 1);
    }

    #[test]
    fn editing_stream_options_keeps_every_other_value_exactly() {
        let body = r#"{"model":"m","prompt":"x","stream":true,"x_big":123456789012345678901234567890,"x_null":null,"x_f":0.1000000000000000055511151231257827,"stream_options":{"include_usage":false,"extra":[1.25,"s"]}}"#;
        let out = native_body(&parsed(Endpoint::Completions, body));
        let text = std::str::from_utf8(&out).unwrap();
        for exact in [
            r#""x_big":123456789012345678901234567890"#,
            r#""x_null":null"#,
            r#""x_f":0.1000000000000000055511151231257827"#,
            r#""extra":[1.25,"s"]"#,
            r#""include_usage":true"#,
        ] {
            assert!(text.contains(exact), "{exact} lost in {text}");
        }
        assert_eq!(text.matches("stream_options").count(), 1, "{text}");
    }

    #[test]
    fn a_null_stream_options_is_replaced_not_duplicated() {
        let body = r#"{"model":"m","prompt":"x","stream":true,"stream_options":null}"#;
        let out = native_body(&parsed(Endpoint::Completions, body));
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches("stream_options").count(), 1, "{text}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }
}
