//! The one place where failures become HTTP responses.
//!
//! Every stage returns an [`ApiError`]; it is classified here, once, into a status code, a
//! public message, OpenAI's error `type`/`code`, and the diagnostic kept for logs. Nothing
//! else in the frontend builds an error body.

use std::time::Duration;

use switchyard_protocol::ErrorBody;

/// `Retry-After` of [`ApiError::model_unavailable`]: a starting engine takes seconds to
/// minutes, so retrying every second only adds load.
const MODEL_UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Sent as `Retry-After` (seconds) when shedding load.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 400: the body is malformed or a field is missing or ill-typed.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "authentication_error", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "permission_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found_error", message)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!("The model `{model}` does not exist or has no instances."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 503: discovery declares the model (e.g. a WorkerPool exists) but no instance serves
    /// it yet — scaled to zero, starting, or rolling out. Clients should retry, not give up.
    pub fn model_unavailable(model: &str) -> Self {
        let mut e = Self::new(
            503,
            "service_unavailable",
            format!("The model `{model}` has no ready instance right now; retry later."),
        )
        .with_param("model")
        .with_code("model_unavailable");
        e.retry_after = Some(MODEL_UNAVAILABLE_RETRY);
        e
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            format!("{method} is not allowed on {path}"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            format!("Request body is larger than the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            415,
            "invalid_request_error",
            format!("Content-Type must be application/json, got `{got}`."),
        )
        .with_code("unsupported_media_type")
    }

    /// 503: nothing can serve the model right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "service_unavailable", message);
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// 503 or 429: shed under overload, with `Retry-After`.
    pub fn overloaded(status: u16, message: impl Into<String>, retry_after: Duration) -> Self {
        let (kind, code) = if status == 429 {
            ("rate_limit_error", "rate_limited")
        } else {
            ("service_unavailable", "overloaded")
        };
        let mut e = Self::new(status, kind, message).with_code(code);
        e.retry_after = Some(retry_after);
        e
    }

    /// 503: the in-flight request-body budget (`limits.max_inflight_body_bytes`) stayed
    /// full for `waited`; the body was drained, not kept.
    pub fn body_budget_exhausted(waited: Duration) -> Self {
        let mut e = Self::new(
            503,
            "service_unavailable",
            format!(
                "The server is holding its limit of in-flight request bodies and none finished within {} ms; retry later.",
                waited.as_millis()
            ),
        )
        .with_code("body_budget_exhausted");
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// Whether the request body may still be (partly) unread when this error is sent: the
    /// connection then cannot carry another request.
    pub fn leaves_body_unread(&self) -> bool {
        self.status == 413 || self.code == Some("body_budget_exhausted")
    }

    /// 408: the client did not send its request body in time.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(408, "invalid_request_error", message).with_code("request_timeout")
    }

    /// 502: the worker failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_error", message).with_code("upstream_error")
    }

    /// 504: the worker did not answer in time.
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(504, "upstream_timeout", message).with_code("upstream_timeout")
    }

    /// A failure on the way to or from a worker, classified by
    /// [`crate::pipeline::failure`]: `status` is 5xx (a 503 carries `Retry-After`).
    pub fn upstream(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        let mut e = Self::new(status, kind, message);
        if status == 503 {
            e.retry_after = Some(Duration::from_secs(1));
        }
        e
    }

    /// A worker's 4xx whose body is not a JSON object (llama.cpp answers some bad requests with
    /// an empty 400): the status stands — the worker judged the request — but the body gets the
    /// API's error shape, quoting what the worker said (bounded) so the client learns why.
    pub fn worker_refusal(status: u16, said: &[u8]) -> Self {
        let kind = match status {
            404 => "not_found_error",
            401 | 403 => "upstream_error",
            _ => "invalid_request_error",
        };
        let text = String::from_utf8_lossy(&said[..said.len().min(200)]);
        let text = text.trim();
        let message = if text.is_empty() {
            format!("the worker refused the request with status {status} and no explanation")
        } else {
            format!("the worker refused the request with status {status}: {text}")
        };
        Self::new(status, kind, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_error", message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(
            self.message.clone(),
            self.kind,
            self.param.clone(),
            self.code.map(str::to_owned),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.message)
    }
}

impl std::error::Error for ApiError {}
