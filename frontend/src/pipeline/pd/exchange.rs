//! One prefill request: sent, read whole (bounded in size and time) and checked. A prefill
//! answer is never relayed, so a failure here only decides what the decode stage does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Limited};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::Instance;

use super::super::failure::{Cause, Failure};
use super::super::Endpoint;
use crate::app::App;

/// Why a prefill produced no usable answer.
#[derive(Debug)]
pub enum PrefillError {
    /// The exchange failed the way a request to a worker fails (counted against its health).
    Failed(Failure),
    /// The instance refused the request with this 4xx (e.g. no KV connector configured): our
    /// request, not its health.
    Refused(u16),
    /// A 2xx answer without a usable KV handle (vLLM's `kv_transfer_params`).
    NoHandle(String),
}

impl std::fmt::Display for PrefillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(failure) => write!(f, "{}: {}", failure.class().label, failure.detail),
            Self::Refused(status) => write!(f, "refused with {status}"),
            Self::NoHandle(why) => f.write_str(why),
        }
    }
}

/// POSTs `body` to `instance` and returns its whole 2xx answer. The instance counts the
/// request as in flight meanwhile (load-aware choices see prefill load), and its health
/// records the outcome.
pub async fn prefill(
    app: &Arc<App>,
    instance: &Arc<Instance>,
    endpoint: Endpoint,
    body: Bytes,
    request_id: &str,
) -> Result<Bytes, PrefillError> {
    let _guard = instance.start_request();
    let fail =
        |cause, detail: String| PrefillError::Failed(Failure::new(cause, instance.id(), detail));
    let uri: Uri = format!("{}{}", instance.spec.url, endpoint.path())
        .parse()
        .map_err(|e| fail(Cause::InvalidUrl, format!("{e}")))?;
    let limits = &app.config.reliability.upstream;
    let timeout = Duration::from_millis(limits.first_byte_timeout_ms);
    let exchange = async {
        let response = app
            .client
            .post_json_with(
                uri,
                body,
                request_id,
                instance.spec.auth_header(),
                // The prefill leg continues the request's trace like any attempt.
                crate::telemetry::worker_headers(),
            )
            .await
            .map_err(|e| match &e {
                switchyard_runtime::ClientError::Request(_) => {
                    fail(Cause::InvalidUrl, e.to_string())
                }
                _ => fail(Cause::of_connect_error(&e), e.to_string()),
            })?;
        let status = response.status();
        let read = Limited::new(response.into_body(), limits.max_response_bytes)
            .collect()
            .await
            .map_err(|e| fail(Cause::Truncated, e.to_string()))?
            .to_bytes();
        if status.is_server_error() {
            let detail = String::from_utf8_lossy(&read[..read.len().min(512)]).into_owned();
            return Err(fail(Cause::ServerError(status.as_u16()), detail));
        }
        if !status.is_success() {
            return Err(PrefillError::Refused(status.as_u16()));
        }
        Ok(read)
    };
    // The prefill leg is an attempt of its own in the request's trace.
    let answer = crate::telemetry::traced!(
        crate::telemetry::spans::attempt(instance.id()),
        tokio::time::timeout(timeout, exchange)
    )
    .map_err(|_| {
        fail(
            Cause::FirstByteTimeout(limits.first_byte_timeout_ms),
            format!(
                "no prefill answer within {} ms",
                limits.first_byte_timeout_ms
            ),
        )
    })??;
    instance.health.record_success(now_ns());
    Ok(answer)
}
