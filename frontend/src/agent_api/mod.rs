//! The APIs coding agents speak — OpenAI Responses (`POST /v1/responses`) and Anthropic
//! Messages (`POST /v1/messages`) — served by translating each request onto chat
//! completions and the answer back ([`switchyard_protocol::bridge`]).
//!
//! The translated request enters the ordinary chat path ([`pipeline::generate_as`]), so
//! routing, plugins, retries, migration, health and metrics (under their own `route`
//! label) treat it exactly like chat; only the body on the way in and out differs.
//! The client's own bytes ride along: an instance that serves the API natively (`apis:`)
//! gets them instead of the translation ([`crate::pipeline::native`]), and its answer
//! comes back marked [`NativeAnswer`] and passes through here untouched.

pub mod count_tokens;
pub mod messages;
pub mod responses;
pub mod stream;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchyard_protocol::bridge::{BridgeError, StreamBridge};
use switchyard_runtime::Api;

use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http::RequestBody;
use crate::pipeline::body_budget::BodyReservation;
use crate::pipeline::native::{NativeAnswer, NativeRequest};
use crate::pipeline::parse::{self, ParsedRequest};
use crate::pipeline::{body_limits, Endpoint};
use crate::tenants::Lease;
use stream::BridgedBody;

/// Reads the body within the limits and decodes it as `T`, naming the offending field.
/// The reservation holds the body's share of the in-flight body budget until the translated
/// request is done.
async fn read<T: DeserializeOwned, B: RequestBody>(
    app: &App,
    headers: &HeaderMap,
    body: B,
) -> Result<(T, Bytes, BodyReservation), ApiError> {
    let (raw, reservation) =
        body_limits::read_within(&app.config.http.limits, &app.body_budget, headers, body).await?;
    parse::require_object(&raw)?;
    Ok((parse::from_json(&raw)?, raw, reservation))
}

/// Serves one agent-API request through the chat pipeline: reads and decodes the body as
/// `R`, keeps what the answer needs from it (`head`), translates it to chat (`to_chat`) and
/// generates under `route`. The head is `None` when the request was refused before
/// translation (its error response is then still OpenAI-shaped).
async fn serve_bridged<R, H, B: RequestBody>(
    app: &Arc<App>,
    api: Api,
    route: (&'static str, Option<Lease>),
    (headers, body, request_id): (HeaderMap, B, &str),
    head: fn(&R) -> H,
    to_chat: fn(&R) -> Result<Value, BridgeError>,
) -> (Response<Body>, Option<H>)
where
    R: DeserializeOwned,
{
    let mut kept = None;
    let slot = &mut kept;
    let parse = async move {
        let (request, raw, reservation): (R, _, _) = read(app, &headers, body).await?;
        *slot = Some(head(&request));
        let mut parsed = chat_request(to_chat(&request), headers, reservation)?;
        parsed.native = Some(NativeRequest { api, raw });
        Ok(parsed)
    };
    let response = crate::pipeline::generate_as(app, route, request_id, parse).await;
    (response, kept)
}

/// The chat request the pipeline will serve, from the translated JSON; it is validated as
/// any chat request is.
fn chat_request(
    chat: Result<Value, BridgeError>,
    headers: HeaderMap,
    reservation: BodyReservation,
) -> Result<ParsedRequest, ApiError> {
    let chat = chat.map_err(|e| {
        let error = ApiError::invalid_request(e.message);
        match e.param {
            Some(param) => error.with_param(param),
            None => error,
        }
    })?;
    let raw =
        Bytes::from(serde_json::to_vec(&chat).map_err(|e| ApiError::internal(e.to_string()))?);
    let typed = parse::decode(Endpoint::Chat, &raw)?;
    Ok(ParsedRequest {
        endpoint: Endpoint::Chat,
        raw,
        typed,
        headers,
        reservation,
        native: None,
    })
}

/// Rewrites the chat pipeline's answer for the client's API with what the request kept
/// (`head`): a stream through `bridge`, a whole completion through `whole` (a worker reply it
/// cannot read is a 502 rendered by `error`). Error responses pass unchanged (OpenAI-shaped;
/// see [`reshape_error`]). The head moves into the stream's bridge rather than being cloned.
fn translate_answer<H>(
    response: Response<Body>,
    head: H,
    whole: fn(&H, &[u8]) -> Result<Vec<u8>, String>,
    bridge: fn(H) -> Box<dyn StreamBridge>,
    error: impl FnOnce(&ApiError) -> Response<Body>,
) -> Response<Body> {
    if response.extensions().get::<NativeAnswer>().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    match body {
        Body::Relay(relay) => {
            let bridged = BridgedBody::new(Body::Relay(relay), bridge(head));
            Response::from_parts(parts, Body::Bridged(Box::new(bridged)))
        }
        Body::Full(bytes) if parts.status.is_success() => {
            match whole(&head, bytes.as_deref().unwrap_or_default()) {
                Ok(body) => Response::from_parts(parts, Body::full(body)),
                Err(message) => error(&ApiError::bad_gateway(message)),
            }
        }
        other => Response::from_parts(parts, other),
    }
}

/// Re-renders an error response (ours are OpenAI-shaped) through `error`, keeping the
/// headers the pipeline set (Retry-After, instance); any other response is returned as is.
pub(crate) fn reshape_error(
    response: Response<Body>,
    error: impl FnOnce(&ApiError) -> Response<Body>,
) -> Response<Body> {
    if response.extensions().get::<NativeAnswer>().is_some() {
        return response; // a native worker's own error, already in the API's shape
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body {
        Body::Full(bytes) if !parts.status.is_success() => bytes,
        other => return Response::from_parts(parts, other),
    };
    let api_error = openai_error(parts.status, bytes.as_deref().unwrap_or_default());
    let (new_parts, new_body) = error(&api_error).into_parts();
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    parts.status = new_parts.status;
    Response::from_parts(parts, new_body)
}

/// Reads an error response body back into an [`ApiError`] (ours are OpenAI-shaped; a
/// worker's own error body may not be, and is then quoted as the message).
fn openai_error(status: StatusCode, body: &[u8]) -> ApiError {
    let (message, param) = match serde_json::from_slice::<switchyard_protocol::ErrorBody>(body) {
        Ok(e) => (e.error.message, e.error.param),
        Err(_) => (String::from_utf8_lossy(body).into_owned(), None),
    };
    let mut error = ApiError::invalid_request(message);
    error.status = status.as_u16();
    error.param = param;
    error
}

/// Serves `POST /v1/responses`.
pub async fn responses<B: RequestBody>(
    app: &Arc<App>,
    request: (HeaderMap, B, Option<Lease>),
    request_id: &str,
) -> Response<Body> {
    responses::handle(app, request, request_id).await
}

/// Serves `POST /v1/messages`.
pub async fn messages<B: RequestBody>(
    app: &Arc<App>,
    request: (HeaderMap, B, Option<Lease>),
    request_id: &str,
) -> Response<Body> {
    messages::handle(app, request, request_id).await
}
