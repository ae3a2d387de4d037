//! Errors and JSON values as responses.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::error::ApiError;

/// Renders an [`ApiError`] in OpenAI's shape.
pub fn error_response<B: From<Bytes>>(error: &ApiError) -> Response<B> {
    let mut response = json_response(
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        error.body().to_json(),
    );
    if let Some(after) = error.retry_after {
        if let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    if error.leaves_body_unread() {
        // The body was not (fully) read: the connection cannot carry another request, and a
        // client that pooled it would fail its next request with an incomplete message.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A JSON body (already serialized) with `status`.
pub fn json_response<B: From<Bytes>>(status: StatusCode, body: String) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn an_error_renders_in_openais_shape_with_retry_after() {
        let error = ApiError::overloaded(503, "No room.", std::time::Duration::from_millis(2_500));
        let response: Response<Full<Bytes>> = error_response(&error);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert!(response.headers().get(header::CONNECTION).is_none());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["message"], "No room.");
        assert_eq!(json["error"]["type"], "service_unavailable");
        assert_eq!(json["error"]["code"], "overloaded");
    }
}
