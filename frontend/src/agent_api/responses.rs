//! `POST /v1/responses`: errors keep OpenAI's shape (the Responses API uses it too).

use std::sync::Arc;

use http::{HeaderMap, Response};
use hyper::body::Incoming;
use switchyard_protocol::bridge::responses_reply::{self, ResponseHead};
use switchyard_protocol::bridge::responses_request;
use switchyard_protocol::bridge::responses_stream::ResponsesStream;
use switchyard_protocol::responses::ResponsesRequest;

use super::{chat_request, read, translate_answer};
use crate::app::App;
use crate::body::Body;
use crate::http_edge::error_response;
use crate::pipeline;

/// The `route` label of these requests' metrics.
pub const ROUTE: &str = "responses";

pub async fn handle(
    app: &Arc<App>,
    headers: HeaderMap,
    body: Incoming,
    request_id: &str,
) -> Response<Body> {
    let mut head = None;
    let head_slot = &mut head;
    let parse = async move {
        let (request, reservation): (ResponsesRequest, _) = read(app, &headers, body).await?;
        *head_slot = Some(ResponseHead::new(&request));
        chat_request(responses_request::to_chat(&request), headers, reservation)
    };
    let response = pipeline::generate_as(app, ROUTE, request_id, parse).await;
    let Some(head) = head else {
        return response; // refused before translation: already an OpenAI-shaped error
    };
    let stream_head = head.clone();
    translate_answer(
        response,
        |body| responses_reply::from_chat(&head, body),
        || Box::new(ResponsesStream::with_head(stream_head)),
        error_response,
    )
}
