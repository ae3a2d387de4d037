//! `GET /ready`: whether this frontend should receive traffic — what a Kubernetes readiness
//! probe and a load balancer's health check ask.
//!
//! Ready once discovery has delivered its first complete list (before it, every model looks
//! unknown and requests would be 404s) and until shutdown starts (then 503, so the endpoint is
//! taken out of rotation during `limits.drain_delay_ms` while the listener still accepts).
//! Unlike `/health`, it does not need a routable model: a frontend whose models are all
//! scaling up answers 503 `model_unavailable` per request, which clients retry, and taking
//! every frontend out of rotation would turn that into connection errors.

use std::sync::atomic::Ordering;

use http::StatusCode;

use crate::app::App;
use crate::body::Body;
use crate::http::json_response;

/// Why the frontend is not ready, or `None` when it is.
pub fn not_ready_reason(listed: bool, draining: bool) -> Option<&'static str> {
    if draining {
        Some("draining")
    } else if !listed {
        Some("discovery has not listed yet")
    } else {
        None
    }
}

/// The `/ready` response.
pub fn ready(app: &App) -> http::Response<Body> {
    let reason = not_ready_reason(
        app.registry.declared.listed(),
        app.draining.load(Ordering::Relaxed),
    );
    let (status, body) = match reason {
        None => (StatusCode::OK, serde_json::json!({"status": "ready"})),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not_ready", "reason": reason}),
        ),
    };
    json_response(status, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_the_first_list_and_before_draining() {
        assert_eq!(
            not_ready_reason(false, false),
            Some("discovery has not listed yet")
        );
        assert_eq!(not_ready_reason(true, false), None);
        assert_eq!(not_ready_reason(true, true), Some("draining"));
    }
}
