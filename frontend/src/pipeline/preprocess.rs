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
}

impl Prepared {
    pub fn upstream_request(
        &self,
        request: &ParsedRequest,
        instance: &Instance,
    ) -> Result<UpstreamRequest, ApiError> {
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
            });
        }
        let body = self.native.get_or_init(|| native_body(request)).clone();
        Ok(UpstreamRequest {
            endpoint: request.endpoint,
            body,
            translated: false,
        })
    }
}

/// The client's bytes, except that streams always ask the worker for usage (so token metrics
/// are exact); the relay drops the usage chunk again if the client did not ask for it.
fn native_body(request: &ParsedRequest) -> Bytes {
    if !request.is_stream() || request.include_usage() {
        return request.raw.clone();
    }
    let has_options = match &request.typed {
        TypedRequest::Chat(r) => r.stream_options.is_some(),
        TypedRequest::Completion(r) => r.stream_options.is_some(),
        TypedRequest::Embedding(_) => true,
    };
    if has_options {
        let mut typed = request.typed.clone();
        let options = match &mut typed {
            TypedRequest::Chat(r) => r.stream_options.get_or_insert_with(Default::default),
            TypedRequest::Completion(r) => r.stream_options.get_or_insert_with(Default::default),
            TypedRequest::Embedding(_) => return request.raw.clone(),
        };
        options.include_usage = Some(true);
        let encoded = match &typed {
            TypedRequest::Chat(r) => serde_json::to_vec(r),
            TypedRequest::Completion(r) => serde_json::to_vec(r),
            TypedRequest::Embedding(r) => serde_json::to_vec(r),
        };
        return encoded
            .map(Bytes::from)
            .unwrap_or_else(|_| request.raw.clone());
    }
    // No `stream_options` key: splice one in after the opening brace (parse guaranteed one).
    let raw = &request.raw;
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
}
