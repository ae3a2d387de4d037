//! The accept loop: hyper 1's HTTP/1 connection driver directly on tokio sockets, one task per
//! connection and none per request, TCP_NODELAY (an SSE chunk must not wait for Nagle), and
//! a graceful stop that closes idle keep-alive connections and lets in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::routes;
use crate::state::Shared;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// A TLS client that does not finish its handshake within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` until `shutdown` resolves, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    stopping: watch::Sender<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => spawn_connection(&builder, &graceful, stream, tls.clone(), &shared),
                Err(e) => {
                    tracing::warn!(error = %e, "mocker accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    // Hanging requests (--hang-rate) watch this and give up so the drain can finish.
    let _ = stopping.send(true);
    graceful.shutdown().await;
}

fn spawn_connection(
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: &Arc<Shared>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    let shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(routes::handle(shared, req).await) }
    });
    let Some(acceptor) = tls else {
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Clients resetting connections is routine for a load-test target.
                tracing::debug!(error = %e, "mocker connection ended with an error");
            }
        });
        return;
    };
    let (builder, watcher) = (builder.clone(), graceful.watcher());
    tokio::spawn(async move {
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "mocker TLS handshake failed");
                return;
            }
            Err(_) => return,
        };
        let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "mocker connection ended with an error");
        }
    });
}
