//! Stage 7 — relay: stream the worker's answer back as it arrives.
//!
//! Streams are re-framed into whole SSE events (never half an event), translated back to the
//! chat shape for completions-only workers, and always end with `data: [DONE]`. If the worker
//! fails, stalls or closes early, the stream is migrated to another instance when migration
//! is on ([`super::migrate`]); otherwise — or when migration is impossible — the client gets
//! an in-band `data: {"error":…}` event before `[DONE]`, never a silent EOF. A worker's own
//! in-band error event is such a failure too ([`super::inband`]). A stall — no *data event*
//! for the stall timeout; SSE comments and keep-alives do not count — also marks the instance
//! degraded. Dropping the body (client gone) drops the upstream response, which closes the
//! worker connection and so cancels generation there.

mod state;
#[cfg(test)]
mod tests;
mod usage;

pub use state::RelayBody;

use std::sync::Arc;

use http::{header, HeaderValue, Response};
use serde::de::IgnoredAny;
use tokio::sync::OwnedSemaphorePermit;

use super::failure::{Cause, Failure};
use super::migrate::{self, Migration};
use super::outcome;
use super::parse::ParsedRequest;
use super::tracker::Tracker;
use super::upstream::Upstream;
use super::AnswerBody;
use crate::app::App;
use crate::error::ApiError;
use crate::http::{error_response, ACCEL_BUFFERING, INSTANCE_HEADER};
use crate::translate;
use state::RelayParts;

/// What the relay keeps besides the upstream answer: the admission slot (held until the
/// stream ends) and the request id (for a continuation's `x-request-id`).
pub struct RelayContext<'a> {
    pub permit: Option<OwnedSemaphorePermit>,
    pub request_id: &'a str,
}

/// Builds the client response for what the worker answered.
pub fn respond<Body: AnswerBody>(
    app: &Arc<App>,
    request: &ParsedRequest,
    upstream: Upstream,
    mut tracker: Tracker,
    context: RelayContext<'_>,
) -> Response<Body> {
    match upstream {
        Upstream::Stream(start) => {
            tracker.set_instance(start.instance.id());
            let instance = HeaderValue::from_str(start.instance.id()).ok();
            let content_type = start
                .content_type
                .clone()
                .unwrap_or(HeaderValue::from_static("text/event-stream"));
            let native = start.native;
            let body = match native {
                Some(api) => Body::from(Box::new(super::native_relay::NativeRelay::new(
                    app,
                    api,
                    start,
                    tracker,
                    context.permit,
                    context.request_id,
                ))),
                None => {
                    let parts = RelayParts {
                        tracker,
                        admission: context.permit,
                        client_wants_usage: request.include_usage(),
                        migration: Migration::new(app, request, context.request_id),
                        connect: migrate::connect,
                        request_key: outcome::request_key(context.request_id),
                    };
                    Body::from(Box::new(RelayBody::new(app, start, parts)))
                }
            };
            let mut response = Response::new(body);
            if native.is_some() {
                response
                    .extensions_mut()
                    .insert(super::native::NativeAnswer);
            }
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, content_type);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // A reverse proxy in front (nginx, an ingress) must not buffer a token stream.
            headers.insert(ACCEL_BUFFERING, HeaderValue::from_static("no"));
            if let Some(id) = instance {
                headers.insert(INSTANCE_HEADER, id);
            }
            response
        }
        Upstream::Complete {
            instance,
            guard,
            status,
            body,
            usage,
            translated,
            native,
        } => {
            if !status.is_success() && !is_json_object(&body) {
                tracker.set_instance(instance.id());
                tracker.finish_with(status.as_u16());
                drop(guard);
                let mut response =
                    error_response(&ApiError::worker_refusal(status.as_u16(), &body));
                if let Ok(id) = HeaderValue::from_str(instance.id()) {
                    response.headers_mut().insert(INSTANCE_HEADER, id);
                }
                return response;
            }
            let body = if translated {
                match translate::completion_to_chat(&body) {
                    Ok(body) => body,
                    Err(detail) => {
                        let failure = Failure::new(Cause::Malformed, instance.id(), detail);
                        tracing::warn!(request_id = context.request_id, %failure, "untranslatable response");
                        let error = failure.to_api_error();
                        tracker.finish_with(error.status);
                        return error_response(&error);
                    }
                }
            } else {
                body
            };
            tracker.set_instance(instance.id());
            if let Some(usage) = usage {
                tracker.record_usage(&usage);
            }
            tracker.finish_with(status.as_u16());
            drop(guard);
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            if native.is_some() {
                response
                    .extensions_mut()
                    .insert(super::native::NativeAnswer);
            }
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(id) = HeaderValue::from_str(instance.id()) {
                headers.insert(INSTANCE_HEADER, id);
            }
            response
        }
    }
}

/// Whether a worker's body is a JSON object (an error body of any engine's shape); anything
/// else is not relayed as `application/json`.
fn is_json_object(body: &[u8]) -> bool {
    body.trim_ascii_start().first() == Some(&b'{')
        && serde_json::from_slice::<IgnoredAny>(body).is_ok()
}
