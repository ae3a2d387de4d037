//! A write-progress timeout for client connections.
//!
//! A client that stops reading a stream never makes hyper's writes fail: they just stay
//! pending once the socket's send buffer is full, and the response — with its admission
//! permit, in-flight slot and worker request — lives as long as the client keeps the
//! connection open. [`WriteTimeout`] fails a write (or flush) that has been pending for
//! `limit` with `TimedOut`; hyper then closes the connection and drops the response, which
//! releases everything it held and cancels the worker request.
//!
//! It sits directly on the socket, under the write coalescing, so it only ever sees the
//! socket's own `Pending` (a full send buffer), never a deliberate deferral; the timer is
//! allocated only then.

use std::future::Future as _;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::conn_limits::ConnGuard;

pub struct WriteTimeout<S> {
    inner: S,
    limit: Option<Duration>,
    /// Running while a write is pending; cleared by any progress.
    stuck: Option<Pin<Box<Sleep>>>,
    /// The timeout fired: every later write fails at once (and is not counted again).
    timed_out: bool,
    /// The connection's place under the connection cap; counts timeouts and is released
    /// when the connection (this stream) is dropped.
    guard: ConnGuard,
}

impl<S> WriteTimeout<S> {
    /// `limit` of `None` never times out.
    pub fn new(inner: S, limit: Option<Duration>, guard: ConnGuard) -> Self {
        Self {
            inner,
            limit,
            stuck: None,
            timed_out: false,
            guard,
        }
    }

    /// Passes `poll` through; a `Pending` starts (or checks) the timer, anything else stops it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        if self.timed_out {
            return Poll::Ready(Err(timed_out()));
        }
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Pending => {
                let Some(limit) = self.limit else {
                    return Poll::Pending;
                };
                let timer = self
                    .stuck
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        self.timed_out = true;
                        self.stuck = None;
                        self.guard
                            .limits()
                            .write_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(?limit, "client stopped reading; closing the connection");
                        Poll::Ready(Err(timed_out()))
                    }
                }
            }
            ready => {
                self.stuck = None;
                ready
            }
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client read nothing for the write timeout",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().watch(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .watch(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch(cx, |s, cx| s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;

    use crate::config::HttpLimits;
    use crate::conn_limits::ConnLimits;

    fn guard() -> (Arc<ConnLimits>, ConnGuard) {
        let limits = Arc::new(ConnLimits::new(&HttpLimits::default()));
        let guard = limits.admit(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        (limits, guard)
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_limit_and_is_counted() {
        let (limits, guard) = guard();
        // A 16-byte pipe whose other end is never read.
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut io = WriteTimeout::new(ours, Some(Duration::from_millis(500)), guard);
        let err = io.write_all(&[0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(limits.write_timeouts.load(Ordering::Relaxed), 1);
        let again = io.flush().await.unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::TimedOut, "stays failed");
        assert_eq!(
            limits.write_timeouts.load(Ordering::Relaxed),
            1,
            "counted once"
        );
        drop(io);
        assert_eq!(
            limits.open(),
            0,
            "the connection's place is released with it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        let (limits, guard) = guard();
        let (ours, mut theirs) = tokio::io::duplex(16);
        let mut io = WriteTimeout::new(ours, Some(Duration::from_millis(500)), guard);
        let reader = tokio::spawn(async move {
            let mut buf = [0; 8];
            let mut total = 0;
            while total < 256 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                total += tokio::io::AsyncReadExt::read(&mut theirs, &mut buf)
                    .await
                    .unwrap();
            }
        });
        io.write_all(&[0; 256]).await.unwrap();
        reader.await.unwrap();
        assert_eq!(limits.write_timeouts.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_a_pending_write_stays_pending() {
        let (_limits, guard) = guard();
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut io = WriteTimeout::new(ours, None, guard);
        let write = io.write_all(&[0; 64]);
        assert!(tokio::time::timeout(Duration::from_secs(3600), write)
            .await
            .is_err());
    }
}
