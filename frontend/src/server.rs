//! The HTTP/1.1 server: accept loop, per-connection limits, graceful shutdown.
//!
//! On shutdown `/health` turns 503 (draining) while `/live` stays 200; after the optional
//! drain delay (`limits.drain_delay_ms`, during which new connections are still accepted so
//! load balancers can notice) the listener is closed (new connections are refused), and
//! in-flight requests — streams included — get up to the grace period to finish; keep-alive
//! connections are closed after their current response.
//!
//! Per-connection limits: header read timeout (slowloris), header bytes and header count
//! (431 beyond them), a write-progress timeout (`write_timeout.rs`), TCP keepalive, and a
//! cap on open connections overall and per client address (`conn_limits.rs`). HTTP/2 is
//! served only over TLS, to clients that negotiate it by ALPN, with the stream, header-list
//! and reset limits in `tls.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::app::App;
use crate::coalescing_io::CoalescingStream;
use crate::conn_limits;
use crate::http_edge;
use crate::write_timeout::WriteTimeout;

/// How long, after the grace period, connections get to deliver their streams' final error
/// event and `[DONE]`.
const STREAM_END_FLUSH: Duration = Duration::from_secs(1);

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let limits = app.config.http.limits.clone();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        // The exact limit on the request line + headers (431 beyond). `max_buf_size` alone
        // is not one: a head that arrives in few large reads can outgrow it before hyper looks.
        .max_header_size(limits.max_header_bytes)
        // hyper panics below 8192; the buffer also carries body bytes, so keep it at least
        // that large whatever the header limit.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let write_timeout =
        (limits.write_timeout_ms > 0).then(|| Duration::from_millis(limits.write_timeout_ms));
    let tls = app.tls.clone();
    let accept = |stream: TcpStream, peer: SocketAddr| {
        let guard = match app.connections.admit(peer.ip()) {
            Ok(guard) => guard,
            Err(reason) => {
                tracing::debug!(%peer, reason = reason.label(), "connection refused");
                conn_limits::refuse(stream, reason);
                return;
            }
        };
        app.connections.configure(&stream);
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(http_edge::handle(app, request).await) }
        });
        if let Some(tls) = &tls {
            let io = WriteTimeout::new(stream, write_timeout, guard);
            let handshake = Duration::from_millis(limits.header_read_timeout_ms);
            let (h1, watcher) = (builder.clone(), graceful.watcher());
            let max_header = limits.max_header_bytes;
            crate::tls::spawn_connection(
                tls.acceptor(),
                io,
                h1,
                service,
                watcher,
                handshake,
                max_header,
            );
            return;
        }
        // Coalesce a streamed response's events into as few writes as arrive together; the
        // write timeout sits under the coalescing so it sees only the socket's own waits.
        let io = TokioIo::new(CoalescingStream::new(WriteTimeout::new(
            stream,
            write_timeout,
            guard,
        )));
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    };
    accept_until(&listener, shutdown, &accept).await;
    // Draining: `/health` answers 503 from now on. With a drain delay the listener stays open
    // that long, so load balancers see the 503 and stop sending before connections are refused.
    app.draining.store(true, Ordering::Relaxed);
    let delay = Duration::from_millis(limits.drain_delay_ms);
    if !delay.is_zero() {
        tracing::info!(?delay, "shutting down: /health is 503, still accepting");
        accept_until(&listener, tokio::time::sleep(delay), &accept).await;
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    if tokio::time::timeout(grace, &mut drained).await.is_ok() {
        tracing::info!("all connections drained");
        return Ok(());
    }
    tracing::warn!("grace period over; ending the streams still open");
    // Streams end with an in-band error and `[DONE]`; their connections then close after
    // that response. A client that does not read it is not waited for long.
    app.grace_over.cancel();
    if tokio::time::timeout(STREAM_END_FLUSH, &mut drained)
        .await
        .is_err()
    {
        tracing::warn!("closing connections whose clients did not take the stream's end");
    }
    Ok(())
}

/// Accepts connections and hands them to `accept` until `stop` resolves.
async fn accept_until(
    listener: &TcpListener,
    stop: impl Future<Output = ()>,
    accept: &impl Fn(TcpStream, SocketAddr),
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => accept(stream, peer),
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = &mut stop => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
