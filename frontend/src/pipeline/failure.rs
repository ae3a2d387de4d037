//! Dispatch and relay failures, classified once.
//!
//! Every way an exchange with a worker can go wrong is a [`Cause`]. One table
//! ([`Cause::class`]) says who caused it ([`Origin`]), the HTTP status and public error code
//! the client gets, the metric label, the passive-health outcome (if any) and whether another
//! instance may be tried. Nothing else in the pipeline decides those.
//!
//! The rule behind the table: a failure counts against an instance only when the instance
//! caused it — it refused or reset the connection, answered 5xx to a request the frontend
//! validated, stalled, or sent a broken stream. What the client chose (a response larger than
//! `upstream.max_response_bytes`, a non-streamed generation that outlives the first-byte
//! timeout because of its `max_tokens`), what the frontend ran out of (file descriptors,
//! ports, buffers) and a 5xx that a second instance reproduces (a poison request) blame no
//! instance, so no stream of hostile requests can eject the pool.
//!
//! Worker error text never reaches the client: the public message names the instance and what
//! went wrong; the worker's own words go to the log with the request id.

use std::error::Error as StdError;

use switchyard_runtime::client::is_local_exhaustion;
use switchyard_runtime::observe::Outcome;

use crate::error::ApiError;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The request (its content or the limits it asked for).
    Client,
    /// The worker instance.
    Worker,
    /// This process (local resources).
    Frontend,
}

/// Whether another instance may be tried after this failure (before the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try the next-ranked instance.
    Yes,
    /// Stop: retrying cannot help (the request's fault, or the worker already ran it).
    No,
    /// Try once more to learn whose fault it is: a failure the next instance reproduces is
    /// the request's ([`Cause::Reproduced`]); one it does not is the first instance's.
    Confirm,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No response head: connection refused, reset or closed before the worker answered.
    Unreachable,
    /// The frontend ran out of a local resource (file descriptors, ports, buffers, memory)
    /// while connecting.
    LocalResource,
    /// The instance's URL (from discovery) is not a valid URI.
    InvalidUrl,
    /// A stream's response head or first event did not come within the first-byte timeout
    /// (ms). A streamed first token does not depend on the output length: the worker's fault.
    FirstByteTimeout(u64),
    /// A non-streamed response did not come within the first-byte timeout (ms). Its first
    /// byte comes after the whole generation, whose length the client chose.
    ResponseTimeout(u64),
    /// A stream broke or closed before its first event.
    NoFirstEvent,
    /// A stream's framing was broken before its first event.
    MalformedStream,
    /// The worker answered this 5xx before anything was relayed.
    ServerError(u16),
    /// The worker's first stream event was an error event not blaming the request.
    ErrorEvent,
    /// A second instance failed the same request the same way (5xx or error event; the
    /// status, 0 for an error event): the request's fault.
    Reproduced(u16),
    /// The response outgrew `upstream.max_response_bytes` (bytes).
    ResponseTooLarge(usize),
    /// The response body ended before it was complete (connection closed early, length
    /// mismatch, JSON cut off).
    Truncated,
    /// The response body or stream is not what the API promises (bad SSE framing, a JSON
    /// body that does not parse, an untranslatable chunk).
    Malformed,
    /// No data for the stall timeout (ms) while the response was being sent.
    Stalled(u64),
    /// The stream broke or closed after the response started.
    BrokenStream,
    /// The worker sent an error event mid-stream, not blaming the request.
    MidStreamError,
    /// A migration target refused the frontend's continuation request with this 4xx (an
    /// endpoint it does not serve): the frontend asked for something the worker cannot do.
    ContinuationRefused(u16),
}

/// One row of the classification table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub origin: Origin,
    pub status: u16,
    /// OpenAI error `type` and `code`.
    pub kind: &'static str,
    pub code: &'static str,
    /// Metric / log label.
    pub label: &'static str,
    /// Counted against the instance's health (and fed to health-policy plugins) as this.
    pub health: Option<Outcome>,
    pub retry: Retry,
}

impl Cause {
    /// The classification table.
    pub fn class(self) -> Class {
        use Origin::{Client, Frontend, Worker};
        use Outcome::{RequestFailed, RequestTimeout};
        let row = |origin, status, code, label, health, retry| Class {
            origin,
            status,
            kind: if status == 504 {
                "upstream_timeout"
            } else if origin == Frontend {
                "service_unavailable"
            } else {
                "upstream_error"
            },
            code,
            label,
            health,
            retry,
        };
        match self {
            Self::Unreachable => row(
                Worker,
                502,
                "upstream_error",
                "unreachable",
                Some(RequestFailed),
                Retry::Yes,
            ),
            Self::LocalResource => row(
                Frontend,
                503,
                "frontend_resources_exhausted",
                "local_resource",
                None,
                Retry::No,
            ),
            Self::InvalidUrl => row(
                Worker,
                502,
                "upstream_error",
                "invalid_url",
                Some(RequestFailed),
                Retry::Yes,
            ),
            Self::FirstByteTimeout(_) => row(
                Worker,
                504,
                "upstream_timeout",
                "first_byte_timeout",
                Some(RequestTimeout),
                Retry::Yes,
            ),
            Self::ResponseTimeout(_) => row(
                Client,
                504,
                "upstream_timeout",
                "response_timeout",
                None,
                Retry::Yes,
            ),
            Self::NoFirstEvent => row(
                Worker,
                502,
                "upstream_error",
                "no_first_event",
                Some(RequestFailed),
                Retry::Yes,
            ),
            Self::MalformedStream => row(
                Worker,
                502,
                "upstream_error",
                "malformed_stream",
                Some(RequestFailed),
                Retry::Yes,
            ),
            Self::ServerError(status) => row(
                Worker,
                status,
                "upstream_error",
                "server_error",
                Some(RequestFailed),
                Retry::Confirm,
            ),
            Self::ErrorEvent => row(
                Worker,
                502,
                "upstream_error",
                "error_event",
                Some(RequestFailed),
                Retry::Confirm,
            ),
            Self::Reproduced(status) => row(
                Client,
                if status == 0 { 502 } else { status },
                "upstream_error",
                "reproduced",
                None,
                Retry::No,
            ),
            Self::ResponseTooLarge(_) => row(
                Client,
                502,
                "response_too_large",
                "response_too_large",
                None,
                Retry::No,
            ),
            Self::Truncated => row(
                Worker,
                502,
                "upstream_truncated",
                "truncated",
                Some(RequestFailed),
                Retry::No,
            ),
            Self::Malformed => row(
                Worker,
                502,
                "upstream_error",
                "malformed",
                Some(RequestFailed),
                Retry::No,
            ),
            Self::Stalled(_) => row(
                Worker,
                504,
                "upstream_timeout",
                "stalled",
                Some(RequestTimeout),
                Retry::No,
            ),
            Self::BrokenStream => row(
                Worker,
                502,
                "stream_interrupted",
                "broken_stream",
                Some(RequestFailed),
                Retry::No,
            ),
            Self::MidStreamError => row(
                Worker,
                502,
                "stream_interrupted",
                "error_event",
                Some(RequestFailed),
                Retry::No,
            ),
            Self::ContinuationRefused(_) => row(
                Frontend,
                502,
                "stream_interrupted",
                "continuation_refused",
                None,
                Retry::Yes,
            ),
        }
    }

    /// What went wrong, in words fit for the client (no worker text).
    fn describe(self) -> String {
        match self {
            Self::Unreachable => "is unreachable".to_owned(),
            Self::LocalResource => {
                "could not be reached: the frontend is out of local resources".to_owned()
            }
            Self::InvalidUrl => "has an invalid URL".to_owned(),
            Self::FirstByteTimeout(ms) => format!("sent no first token within {ms} ms"),
            Self::ResponseTimeout(ms) => format!(
                "did not finish the response within {ms} ms (upstream.first_byte_timeout_ms; \
                 a smaller max_tokens or streaming avoids this)"
            ),
            Self::NoFirstEvent => "closed the stream before its first token".to_owned(),
            Self::MalformedStream => "sent a malformed stream".to_owned(),
            Self::ServerError(status) => format!("answered {status}"),
            Self::ErrorEvent => "sent an error event before its first token".to_owned(),
            Self::Reproduced(0) => {
                "and another instance both failed this request with an error event; \
                 it is not retried further"
                    .to_owned()
            }
            Self::Reproduced(status) => format!(
                "and another instance both answered this request with {status}; \
                 it is not retried further"
            ),
            Self::ResponseTooLarge(limit) => format!(
                "sent a response larger than the frontend's limit of {limit} bytes \
                 (upstream.max_response_bytes); ask for fewer tokens or stream"
            ),
            Self::Truncated => "ended its response before it was complete".to_owned(),
            Self::Malformed => "sent a malformed response".to_owned(),
            Self::Stalled(ms) => format!("sent no data for {ms} ms (stalled)"),
            Self::BrokenStream => "broke the stream before it finished".to_owned(),
            Self::MidStreamError => "sent an error event mid-stream".to_owned(),
            Self::ContinuationRefused(status) => {
                format!("refused the stream's continuation with {status}")
            }
        }
    }

    /// Classifies a failure to get a response head: the frontend's own resource exhaustion
    /// (found anywhere in the error's source chain) or the worker being unreachable.
    pub fn of_connect_error(error: &(dyn StdError + 'static)) -> Self {
        if is_local_exhaustion(error) {
            Self::LocalResource
        } else {
            Self::Unreachable
        }
    }
}

/// A classified failure of one exchange with one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub cause: Cause,
    /// The instance's id (for the public message).
    pub instance: String,
    /// The diagnostic (the worker's error text, the transport error): logs only.
    pub detail: String,
}

impl Failure {
    pub fn new(cause: Cause, instance: &str, detail: impl Into<String>) -> Self {
        Self {
            cause,
            instance: instance.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn class(&self) -> Class {
        self.cause.class()
    }

    /// The public message: which instance failed and how.
    pub fn message(&self) -> String {
        format!("Instance {} {}.", self.instance, self.cause.describe())
    }

    /// The error the client gets.
    pub fn to_api_error(&self) -> ApiError {
        let class = self.class();
        ApiError::upstream(class.status, class.kind, self.message()).with_code(class.code)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.message(),
            self.class().label,
            self.detail
        )
    }
}

#[cfg(test)]
#[path = "failure_tests.rs"]
mod tests;
