//! A small HTTP server: `/healthz` (process alive), `/readyz` and `/metrics`.
//!
//! `/readyz` answers 200 on a standby waiting for the lease, and on the leader (or a replica
//! without leader election) once every controller's primary watch has completed its first
//! list; 503 before that, including between winning the lease and that first list.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::Result;

/// Shared readiness flag.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// How long a client may take to send its request headers, and to finish a connection.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub connection_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
        }
    }
}

/// Pause after a failed accept (e.g. `EMFILE`), so a persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds `addr` and serves until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, ready: Arc<Readiness>) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    serve_on(listener, metrics, ready, ServerLimits::default()).await
}

/// Serves on `listener`. A failed accept (out of file descriptors, a connection reset before
/// it was accepted) is logged and the loop goes on: the probes must outlive a bad moment,
/// or the kubelet restarts a healthy operator. A client that does not send its headers
/// within `limits.header_timeout`, or holds a connection past `limits.connection_timeout`,
/// is disconnected.
pub async fn serve_on(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    limits: ServerLimits,
) -> Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed; continuing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let ready = ready.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let response = respond(req.uri().path(), &metrics, &ready);
            async move { Ok::<_, Infallible>(response) }
        });
        // One short-lived task per scrape/probe connection; it ends with the connection.
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            match tokio::time::timeout(limits.connection_timeout, conn).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "probe connection ended with an error"),
                Err(_) => tracing::debug!("probe connection held too long; closed"),
                Ok(Ok(())) => {}
            }
        });
    }
}

/// The response for `path`.
pub fn respond(path: &str, metrics: &Metrics, ready: &Readiness) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok".to_string()),
        "/readyz" if ready.get() => (StatusCode::OK, "text/plain", "ready".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "starting".to_string(),
        ),
        "/metrics" => (
            StatusCode::OK,
            switchyard_runtime::exposition::CONTENT_TYPE,
            metrics.encode(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_metrics() {
        let m = Metrics::default();
        let r = Readiness::default();
        assert_eq!(respond("/healthz", &m, &r).status(), StatusCode::OK);
        assert_eq!(
            respond("/readyz", &m, &r).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        r.set(true);
        assert_eq!(respond("/readyz", &m, &r).status(), StatusCode::OK);
        assert_eq!(respond("/metrics", &m, &r).status(), StatusCode::OK);
        assert_eq!(respond("/nope", &m, &r).status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ServerLimits {
            header_timeout: Duration::from_millis(200),
            connection_timeout: Duration::from_secs(60),
        };
        let server = tokio::spawn(serve_on(
            listener,
            Arc::new(Metrics::default()),
            Arc::new(Readiness::default()),
            limits,
        ));
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // The server closes the connection (read returns EOF) instead of waiting forever;
        // the outer timeout only keeps a broken build from hanging the suite.
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the half-sent request was never closed");
        // The server still answers others.
        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        ok.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.abort();
    }
}
