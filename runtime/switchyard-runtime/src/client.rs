//! The pooled HTTP/1.1 client that carries requests to workers, over TLS for `https://`
//! worker URLs ([`crate::client_tls`]).
//!
//! TCP_NODELAY is set on every upstream socket: without it a streamed response stalls ~40 ms
//! per event on the Nagle/delayed-ACK interaction (measured on two peer routers).
//!
//! **The seam.** Every caller (dispatch, migration, prefill, probes, canaries, load scrapes)
//! goes through [`WorkerClient`], which is either hyper's pooled client or a [`Transport`]
//! (`Arc<dyn Transport>`): a scripted fake worker in a unit test, or an embedder's own way to
//! reach an engine. Responses come back as [`WorkerBody`], an enum of hyper's body and any
//! other body, so the request path can be driven end to end without a socket.
//!
//! Why an enum and not a trait object (or a generic parameter) for the client: the product
//! path stays exactly what it was — a direct call into hyper, no boxed future and no virtual
//! call per attempt; only a custom transport pays for `dyn`. A generic `App<C: Transport>`
//! would do the same but spread a type parameter over every stage of the pipeline and the
//! edge for the sake of tests.

mod body;
mod transport;

pub use body::{BoxError, WorkerBody};
pub use transport::{Transport, TransportFuture};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::FutureExt as _;
use http::{header, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};

use crate::client_tls::UpstreamTls;

/// Upstream connection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// TCP connect timeout, milliseconds.
    #[serde(
        rename = "connect_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub connect_timeout_ms: u64,
    /// How long an idle pooled connection is kept, milliseconds.
    #[serde(
        rename = "pool_idle_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub pool_idle_timeout_ms: u64,
    /// Idle connections kept per worker.
    pub pool_max_idle_per_host: usize,
    /// TLS to `https://` workers (`upstream.tls`).
    pub tls: UpstreamTls,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 1_024,
            tls: UpstreamTls::default(),
        }
    }
}

/// Why an upstream call failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build upstream request: {0}")]
    Request(#[from] http::Error),
    #[error("upstream connection failed: {}", chain(.0))]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// A custom [`Transport`] found no response.
    #[error("upstream connection failed: {}", chain(.0.as_ref()))]
    Transport(#[source] BoxError),
}

/// An error and its sources, `: `-joined: hyper's own message ("client error (Connect)")
/// says nothing about a refused certificate, its source does.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
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

/// Cheap to clone; all clones share one connection pool (or one transport).
#[derive(Clone)]
pub struct WorkerClient {
    inner: Inner,
}

// Built once per frontend and never moved on the request path: the hyper client stays inline
// (as before the seam) rather than behind a box every request would dereference.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Inner {
    Hyper(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    Custom(Arc<dyn Transport>),
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Hyper(client) => f.debug_tuple("WorkerClient").field(client).finish(),
            Inner::Custom(_) => f.write_str("WorkerClient(custom transport)"),
        }
    }
}

impl WorkerClient {
    /// A client with `config`'s pool settings; `https://` workers are verified against the
    /// public roots whatever `config.tls` says (use [`Self::try_new`] for that).
    // The default reads no file: its only failure would be ring lacking TLS 1.2 and 1.3,
    // which is a build defect, not an input.
    #[allow(clippy::expect_used)]
    pub fn new(config: &ClientConfig) -> Self {
        let tls = UpstreamTls::default()
            .rustls_config()
            .expect("ring supports the default TLS versions");
        Self::build(config, tls)
    }

    /// A client with `config`'s pool and TLS settings; errors name the `upstream.tls` key
    /// and file that is wrong.
    pub fn try_new(config: &ClientConfig) -> Result<Self, String> {
        Ok(Self::build(config, config.tls.rustls_config()?))
    }

    fn build(config: &ClientConfig, tls: rustls::ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        // The TLS wrapper sees `https://` URIs; plain HTTP stays plain.
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        connector.set_keepalive(Some(Duration::from_secs(30)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(config.pool_idle_timeout_ms))
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            inner: Inner::Hyper(inner),
        }
    }

    /// A client whose requests `transport` carries (tests, embedders): see the module doc.
    pub fn from_transport(transport: Arc<dyn Transport>) -> Self {
        Self {
            inner: Inner::Custom(transport),
        }
    }

    /// Sends `request` by whatever carries this client's requests.
    /// One exchange. Not an `async fn`: the future is the hyper client's own (or the
    /// transport's), mapped, with no state machine of its own around it — every layer of
    /// `async` around the worker call is one more copy of its future per request.
    fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> impl Future<Output = Result<Response<WorkerBody>, ClientError>> + Send + 'static {
        match &self.inner {
            Inner::Hyper(client) => Either::Left(client.request(request).map(|answer| {
                answer
                    .map(|response| response.map(WorkerBody::from))
                    .map_err(ClientError::Connect)
            })),
            Inner::Custom(transport) => Either::Right(
                transport
                    .send(request)
                    .map(|answer| answer.map_err(ClientError::Transport)),
            ),
        }
    }

    /// POSTs a JSON body. `request_id` is forwarded as `x-request-id` so worker logs correlate;
    /// `auth` is the worker's `Authorization` header when it needs one.
    pub async fn post_json(
        &self,
        uri: Uri,
        body: Bytes,
        request_id: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Response<WorkerBody>, ClientError> {
        self.post_json_with(uri, body, request_id, auth, []).await
    }

    /// [`Self::post_json`] with `extra` headers (the trace context of a routed request, a
    /// native agent-API request's version headers).
    pub fn post_json_with(
        &self,
        uri: Uri,
        body: Bytes,
        request_id: &str,
        auth: Option<&HeaderValue>,
        extra: impl IntoIterator<Item = (header::HeaderName, HeaderValue)>,
    ) -> impl Future<Output = Result<Response<WorkerBody>, ClientError>> + Send + 'static {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", request_id);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        for (name, value) in extra {
            request = request.header(name, value);
        }
        match request.body(Full::new(body)) {
            Ok(request) => Either::Left(self.send(request)),
            Err(e) => Either::Right(std::future::ready(Err(ClientError::Request(e)))),
        }
    }

    pub async fn get(
        &self,
        uri: Uri,
        auth: Option<&HeaderValue>,
    ) -> Result<Response<WorkerBody>, ClientError> {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        self.send(request.body(Full::new(Bytes::new()))?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use parking_lot::Mutex;

    /// Answers every request with its own `x-request-id` and body, and remembers the URIs.
    #[derive(Default)]
    struct Echo {
        seen: Mutex<Vec<String>>,
        refuse: Option<std::io::ErrorKind>,
    }

    impl Transport for Echo {
        fn send(&self, request: Request<Full<Bytes>>) -> TransportFuture {
            self.seen.lock().push(request.uri().to_string());
            let refuse = self.refuse;
            Box::pin(async move {
                if let Some(kind) = refuse {
                    return Err(std::io::Error::from(kind).into());
                }
                let id = request.headers()["x-request-id"].clone();
                let body = request.into_body().collect().await?.to_bytes();
                let mut response = Response::new(WorkerBody::full(body));
                response.headers_mut().insert("x-request-id", id);
                Ok(response)
            })
        }
    }

    #[tokio::test]
    async fn a_custom_transport_carries_the_request_and_streams_the_answer() {
        let echo = Arc::new(Echo::default());
        let client = WorkerClient::from_transport(echo.clone());
        let uri: Uri = "http://w1/v1/completions".parse().unwrap();
        let response = client
            .post_json(uri, Bytes::from_static(b"{}"), "r-1", None)
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "r-1");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{}");
        assert_eq!(*echo.seen.lock(), ["http://w1/v1/completions"]);
    }

    #[tokio::test]
    async fn a_transport_error_is_a_connect_error_and_exhaustion_is_local() {
        for (kind, local) in [
            (std::io::ErrorKind::ConnectionRefused, false),
            (std::io::ErrorKind::OutOfMemory, true),
        ] {
            let echo = Arc::new(Echo {
                refuse: Some(kind),
                ..Echo::default()
            });
            let client = WorkerClient::from_transport(echo);
            let error = client
                .get("http://w1/health".parse().unwrap(), None)
                .await
                .unwrap_err();
            assert!(matches!(error, ClientError::Transport(_)), "{error}");
            assert!(error.to_string().starts_with("upstream connection failed"));
            assert_eq!(error.is_local_exhaustion(), local, "{kind:?}");
        }
    }
}
