//! Building HTTP responses: the body type, JSON and SSE responses, and OpenAI-shaped errors.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, Either, Full};
use switchyard_protocol::ErrorBody;

/// Every response body: a whole buffer, or a stream of SSE events.
pub(crate) type Body = Either<Full<Bytes>, UnsyncBoxBody<Bytes, Infallible>>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A complete JSON response.
pub(crate) fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    with_type(status, JSON, Either::Left(Full::new(body)))
}

/// A complete response with another content type.
pub(crate) fn text(content_type: &'static str, body: String) -> Response<Body> {
    let value = HeaderValue::from_static(content_type);
    with_type(
        StatusCode::OK,
        value,
        Either::Left(Full::new(Bytes::from(body))),
    )
}

/// A `text/event-stream` response; events follow as the body produces them. The type carries
/// `charset=utf-8` as vLLM's and SGLang's servers send it (Starlette adds it to `text/*`).
pub(crate) fn sse(body: UnsyncBoxBody<Bytes, Infallible>) -> Response<Body> {
    let mut resp = with_type(
        StatusCode::OK,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
        Either::Right(body),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A request that is answered with an error instead of a completion.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
        }
    }

    /// 404 for a model this mocker does not serve (nor an adapter it has loaded).
    pub fn model_not_found(model: &str) -> Self {
        Self {
            code: Some("model_not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                format!("The model `{model}` does not exist."),
            )
        }
    }

    /// The status alone, with an empty body (`--empty-errors`).
    pub fn into_empty_response(self) -> Response<Body> {
        let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
        *response.status_mut() = self.status;
        response
    }

    /// The OpenAI-shaped response: `{"error":{"message","type","param","code"}}`.
    pub fn into_response(self) -> Response<Body> {
        if self.code == Some("model_not_found") {
            // vLLM's words for an unknown model or adapter: its error type and the status as
            // the code.
            let body = serde_json::json!({"error": {
                "message": self.message, "type": "NotFoundError", "param": "model", "code": 404,
            }});
            return json(self.status, Bytes::from(body.to_string()));
        }
        let kind = if self.status.is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        };
        let code = self.code.map(str::to_owned);
        let body = ErrorBody::new(self.message, kind, None, code);
        json(self.status, Bytes::from(body.to_json()))
    }
}

/// Shorthand for an error response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    ApiError::new(status, message).into_response()
}

fn with_type(status: StatusCode, content_type: HeaderValue, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    resp
}
