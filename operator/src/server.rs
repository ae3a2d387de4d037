//! A small HTTP server: `/healthz` (process alive), `/readyz` and `/metrics`.
//!
//! `/readyz` answers 200 on a standby waiting for the lease, and on the leader (or a replica
//! without leader election) once every controller's primary watch has completed its first
//! list; 503 before that, including between winning the lease and that first list.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
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

/// Serves until the listener fails.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, ready: Arc<Readiness>) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        let ready = ready.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let response = respond(req.uri().path(), &metrics, &ready);
            async move { Ok::<_, Infallible>(response) }
        });
        // One short-lived task per scrape/probe connection; it ends with the connection.
        tokio::spawn(async move {
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "probe connection ended with an error");
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
        "/metrics" => match metrics.encode() {
            Ok(text) => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "encoding failed".to_string(),
            ),
        },
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
}
