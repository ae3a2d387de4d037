//! `POST /v1/messages`: every error on this route is in Anthropic's shape, with Anthropic's
//! status codes (529 `overloaded_error` when shedding load), since that is what Anthropic
//! clients parse. `x-api-key` and `anthropic-version` headers are accepted (the version is
//! not checked: the translation speaks the one Messages API there is).

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use switchyard_protocol::bridge::messages_reply::{self, MessageHead};
use switchyard_protocol::bridge::messages_request;
use switchyard_protocol::bridge::messages_stream::MessagesStream;
use switchyard_protocol::messages::AnthropicError;

use super::{reshape_error, serve_bridged, translate_answer};
use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http::json_response;
use crate::http::RequestBody;
use crate::tenants::Lease;

/// The `route` label of these requests' metrics.
pub const ROUTE: &str = "messages";

pub async fn handle<B: RequestBody>(
    app: &Arc<App>,
    (headers, body, lease): (HeaderMap, B, Option<Lease>),
    request_id: &str,
) -> Response<Body> {
    let (response, head) = serve_bridged(
        app,
        switchyard_runtime::Api::Messages,
        (ROUTE, lease),
        (headers, body, request_id),
        MessageHead::new,
        messages_request::to_chat,
    )
    .await;
    let Some(head) = head else {
        return reshape_error(response, error_response);
    };
    let response = translate_answer(
        response,
        head,
        messages_reply::from_chat,
        |head| Box::new(MessagesStream::with_head(head)),
        error_response,
    );
    reshape_error(response, error_response)
}

/// Renders `error` in Anthropic's shape; the parameter it names leads the message (the
/// shape has no `param` field).
pub fn error_response(error: &ApiError) -> Response<Body> {
    let message = match &error.param {
        Some(param) if !error.message.contains(param.as_str()) => {
            format!("{param}: {}", error.message)
        }
        _ => error.message.clone(),
    };
    let (status, body) = AnthropicError::for_status(error.status, message);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, body.to_json());
    if let Some(after) = error.retry_after {
        if let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}
