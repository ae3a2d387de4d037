//! `--native-apis responses,messages`: the mocker serves OpenAI's Responses API
//! (`POST /v1/responses`) and Anthropic's Messages API (`POST /v1/messages`) itself, as an
//! engine with those endpoints does, so a frontend's native passthrough is tested against a
//! worker that really receives the client's request.
//!
//! The request is validated in its own API (errors in that API's shape), turned into the
//! chat request the mocker's generator serves — so the text is the same one the chat route
//! produces for the same conversation and seed — and the answer is written in the API's
//! wire shape (the protocol crate's writers for Responses objects and events and Anthropic
//! messages and events). A stream cut short by a fault knob (`--die-after-tokens`) ends with
//! a bare EOF, as a crashing engine's would: the frontend must end it for the client.
//!
//! Every request is also counted by route (`switchyard_mocker_route_requests_total`), which
//! is how tests tell a native request from a translated one; native requests are also
//! counted by the client-facing headers they arrived with
//! (`switchyard_mocker_native_headers_total`), which is how tests see what a frontend
//! forwards: Anthropic's version and beta values, and whether any API key came along
//! (counted by where it was sent, never by its value).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, StreamBody};
use hyper::body::Incoming;
use serde_json::Value;
use switchyard_protocol::bridge::messages_reply::{self, MessageHead};
use switchyard_protocol::bridge::messages_stream::MessagesStream;
use switchyard_protocol::bridge::responses_reply::{self, ResponseHead};
use switchyard_protocol::bridge::responses_stream::ResponsesStream;
use switchyard_protocol::bridge::{messages_request, responses_request, BridgeError, StreamBridge};
use switchyard_protocol::messages::{AnthropicError, MessagesRequest};
use switchyard_protocol::responses::ResponsesRequest;
use switchyard_protocol::sse::Framer;
use switchyard_protocol::ErrorBody;
use switchyard_runtime::exposition::{Family, Scrape};
use switchyard_runtime::Api;

use crate::respond::{self, Body};
use crate::routes::{generate_body, read_json};
use crate::state::Shared;
use crate::wire::Kind;

/// The agent APIs a mocker may serve natively.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeApi {
    Responses,
    Messages,
}

impl NativeApi {
    fn api(self) -> Api {
        match self {
            Self::Responses => Api::Responses,
            Self::Messages => Api::Messages,
        }
    }
}

/// `--native-apis`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
pub struct NativeArgs {
    /// Serve these agent APIs natively (comma-separated: `responses`, `messages`); without
    /// it their routes answer 404 like a chat-only engine's.
    #[arg(long = "native-apis", value_enum, value_delimiter = ',')]
    pub native_apis: Vec<NativeApi>,
}

impl NativeArgs {
    /// Whether `path` is the route of an API served natively.
    pub fn serves(&self, path: &str) -> bool {
        self.native_apis.iter().any(|a| a.api().path() == path)
    }

    /// The names to register in discovery (`apis`).
    pub fn names(&self) -> Vec<String> {
        self.native_apis
            .iter()
            .map(|a| a.api().as_str().to_owned())
            .collect()
    }
}

const ROUTE_REQUESTS: Family = Family::counter(
    "switchyard_mocker_route_requests_total",
    "Requests received, by API route (chat, completions, responses, messages).",
);

const NATIVE_HEADERS: Family = Family::counter(
    "switchyard_mocker_native_headers_total",
    "Native agent-API requests by a header they carried: anthropic-version and \
     anthropic-beta by value; x-api-key and authorization by whether the value was this \
     mocker's --api-key (value=\"worker-key\") or not (value=\"other\").",
);

/// Requests per API route, and native requests per header they carried.
#[derive(Debug, Default)]
pub struct RouteCounts {
    routes: [AtomicU64; 4],
    headers: parking_lot::Mutex<std::collections::BTreeMap<(&'static str, String), u64>>,
}

impl RouteCounts {
    pub fn count(&self, path: &str) {
        if let Some(i) = Api::ALL.iter().position(|a| a.path() == path) {
            self.routes[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts the headers of a native request (see [`NATIVE_HEADERS`]).
    fn count_headers(&self, headers: &http::HeaderMap, own_key: Option<&str>) {
        let mut seen = Vec::new();
        for name in ["anthropic-version", "anthropic-beta"] {
            for value in headers.get_all(name) {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                seen.push((name, value));
            }
        }
        let is_own = |given: &str| own_key.is_some_and(|key| given == key);
        for name in ["x-api-key", "authorization"] {
            for value in headers.get_all(name) {
                let value = value.to_str().unwrap_or_default();
                let given = value.strip_prefix("Bearer ").unwrap_or(value);
                let which = if is_own(given) { "worker-key" } else { "other" };
                seen.push((name, which.to_owned()));
            }
        }
        let mut counts = self.headers.lock();
        for key in seen {
            *counts.entry(key).or_default() += 1;
        }
    }

    pub fn collect(&self, s: &mut Scrape) {
        let mut family = s.family(&ROUTE_REQUESTS);
        for (api, count) in Api::ALL.iter().zip(&self.routes) {
            family.value(&[("route", api.as_str())], count.load(Relaxed) as f64);
        }
        let counts = self.headers.lock();
        let mut family = s.family(&NATIVE_HEADERS);
        for ((name, value), count) in counts.iter() {
            family.value(
                &[("header", *name), ("value", value.as_str())],
                *count as f64,
            );
        }
    }
}

/// What the answer needs from the request, per API.
enum Head {
    Responses(Box<ResponseHead>),
    Messages(MessageHead),
}

/// Serves `POST /v1/responses` or `POST /v1/messages`.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let messages = req.uri().path() == Api::Messages.path();
    shared
        .routes
        .count_headers(req.headers(), shared.args.api_key.as_deref());
    let error = |status: StatusCode, message: String| {
        if messages {
            anthropic_error(status.as_u16(), message)
        } else {
            respond::error(status, message)
        }
    };
    let body = match read_json(req).await {
        Ok(body) => body,
        Err(e) => return reshape(messages, e.into_response()).await,
    };
    let translated = if messages {
        to_chat::<MessagesRequest>(&body, messages_request::to_chat, |r| {
            Head::Messages(MessageHead::new(r))
        })
    } else {
        to_chat::<ResponsesRequest>(&body, responses_request::to_chat, |r| {
            Head::Responses(Box::new(ResponseHead::new(r)))
        })
    };
    let (mut chat, head) = match translated {
        Ok(translated) => translated,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let stream = chat.get("stream").and_then(Value::as_bool) == Some(true);
    if stream {
        chat["stream_options"] = serde_json::json!({"include_usage": true});
    }
    let chat = match serde_json::to_vec(&chat) {
        Ok(chat) => chat,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let answer = generate_body(shared, &chat, Kind::Chat).await;
    if !answer.status().is_success() {
        return reshape(messages, answer).await;
    }
    let (parts, body) = answer.into_parts();
    if stream {
        let bridge: Box<dyn StreamBridge> = match head {
            Head::Responses(h) => Box::new(ResponsesStream::with_head(*h)),
            Head::Messages(h) => Box::new(MessagesStream::with_head(h)),
        };
        return Response::from_parts(parts, http_body_util::Either::Right(events(body, bridge)));
    }
    let whole = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let written = match &head {
        Head::Responses(h) => responses_reply::from_chat(h, &whole),
        Head::Messages(h) => messages_reply::from_chat(h, &whole),
    };
    match written {
        Ok(json) => respond::json(StatusCode::OK, Bytes::from(json)),
        Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, message),
    }
}

/// Decodes the API's request and its chat equivalent; the message names the bad field.
fn to_chat<R: serde::de::DeserializeOwned>(
    body: &[u8],
    to_chat: fn(&R) -> Result<Value, BridgeError>,
    head: fn(&R) -> Head,
) -> Result<(Value, Head), String> {
    let request: R =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    let chat = to_chat(&request).map_err(|e| match e.param {
        Some(param) => format!("{param}: {}", e.message),
        None => e.message,
    })?;
    Ok((chat, head(&request)))
}

/// The chat SSE stream rewritten as the API's events. When the chat stream ends without
/// `[DONE]` (a simulated crash) the rewritten one ends there too, without a failure event.
fn events(body: Body, bridge: Box<dyn StreamBridge>) -> UnsyncBoxBody<Bytes, Infallible> {
    let state = (body, Framer::default(), bridge);
    let stream =
        futures_util::stream::unfold(state, |(mut body, mut framer, mut bridge)| async move {
            let mut out = BytesMut::new();
            while out.is_empty() {
                if bridge.finished() {
                    return None;
                }
                // A body error ends the stream as a crash would.
                let frame = body.frame().await?.ok()?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                framer.push(&data);
                while let Ok(Some(event)) = framer.next_event() {
                    bridge.event(&event.data, &mut out);
                }
            }
            let frame = Ok::<_, Infallible>(http_body::Frame::data(out.freeze()));
            Some((frame, (body, framer, bridge)))
        });
    StreamBody::new(stream).boxed_unsync()
}

/// An error response re-rendered in the API's shape (Anthropic's for Messages).
async fn reshape(messages: bool, response: Response<Body>) -> Response<Body> {
    if !messages {
        return response;
    }
    let status = response.status();
    let bytes = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => Bytes::from(e.to_string()),
    };
    let message = serde_json::from_slice::<ErrorBody>(&bytes)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
    anthropic_error(status.as_u16(), message)
}

fn anthropic_error(status: u16, message: String) -> Response<Body> {
    let (status, body) = AnthropicError::for_status(status, message);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond::json(status, Bytes::from(body.to_json()))
}
