//! The pooled HTTP/1.1 client that carries requests to workers.
//!
//! TCP_NODELAY is set on every upstream socket: without it a streamed response stalls ~40 ms
//! per event on the Nagle/delayed-ACK interaction (measured on two peer routers).

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};

/// Upstream connection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// TCP connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// How long an idle pooled connection is kept, milliseconds.
    pub pool_idle_timeout_ms: u64,
    /// Idle connections kept per worker.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 1_024,
        }
    }
}

/// Why an upstream call failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build upstream request: {0}")]
    Request(#[from] http::Error),
    #[error("upstream connection failed: {0}")]
    Connect(#[source] hyper_util::client::legacy::Error),
}

impl ClientError {
    /// True when the call failed because this process ran out of something (file
    /// descriptors, ports, buffers, memory), not because of the worker: such a failure must
    /// not count against the worker's health.
    pub fn is_local_exhaustion(&self) -> bool {
        is_local_exhaustion(self)
    }
}

/// Whether `error`, or any error in its source chain, is a local resource running out:
/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` or `EADDRNOTAVAIL` (no ephemeral port left).
pub fn is_local_exhaustion(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::OutOfMemory
                || matches!(
                    io.raw_os_error(),
                    Some(
                        libc::EMFILE
                            | libc::ENFILE
                            | libc::ENOBUFS
                            | libc::ENOMEM
                            | libc::EADDRNOTAVAIL
                    )
                )
            {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// Cheap to clone; all clones share one connection pool.
#[derive(Debug, Clone)]
pub struct WorkerClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl WorkerClient {
    pub fn new(config: &ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        connector.set_keepalive(Some(Duration::from_secs(30)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(config.pool_idle_timeout_ms))
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self { inner }
    }

    /// POSTs a JSON body. `request_id` is forwarded as `x-request-id` so worker logs correlate;
    /// `auth` is the worker's `Authorization` header when it needs one.
    pub async fn post_json(
        &self,
        uri: Uri,
        body: Bytes,
        request_id: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", request_id);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        self.inner
            .request(request.body(Full::new(body))?)
            .await
            .map_err(ClientError::Connect)
    }

    pub async fn get(
        &self,
        uri: Uri,
        auth: Option<&HeaderValue>,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        self.inner
            .request(request.body(Full::new(Bytes::new()))?)
            .await
            .map_err(ClientError::Connect)
    }
}
