//! `POST /v1/responses`: errors keep OpenAI's shape (the Responses API uses it too).

use std::sync::Arc;

use http::{HeaderMap, Response};
use switchyard_protocol::bridge::responses_reply::{self, ResponseHead};
use switchyard_protocol::bridge::responses_request;
use switchyard_protocol::bridge::responses_stream::ResponsesStream;

use super::{serve_bridged, translate_answer};
use crate::app::App;
use crate::body::Body;
use crate::http::error_response;
use crate::http::RequestBody;
use crate::tenants::Lease;

/// The `route` label of these requests' metrics.
pub const ROUTE: &str = "responses";

pub async fn handle<B: RequestBody>(
    app: &Arc<App>,
    (headers, body, lease): (HeaderMap, B, Option<Lease>),
    request_id: &str,
) -> Response<Body> {
    let (response, head) = serve_bridged(
        app,
        switchyard_runtime::Api::Responses,
        (ROUTE, lease),
        (headers, body, request_id),
        ResponseHead::new,
        responses_request::to_chat,
    )
    .await;
    let Some(head) = head else {
        return response; // refused before translation: already an OpenAI-shaped error
    };
    translate_answer(
        response,
        head,
        responses_reply::from_chat,
        |head| Box::new(ResponsesStream::with_head(head)),
        error_response,
    )
}
