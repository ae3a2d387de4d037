//! Write coalescing for client connections.
//!
//! hyper flushes a response whenever its body returns `Pending`. A relayed stream returns
//! `Pending` after every SSE event, because the upstream connection hands over one chunk at a
//! time — so without help, every event costs one `writev` and one cross-CPU wakeup of the
//! reader, even when the worker sent twenty events in one TCP segment. On a loopback
//! benchmark that was ~19 `writev`s per 16-token stream and two thirds of the frontend's CPU.
//!
//! [`CoalescingStream`] buffers writes and, when asked to flush right after new bytes arrived,
//! defers the flush by one scheduler round (wake itself, return `Pending`). Other ready tasks
//! run first — typically the upstream connection delivering the next event — and the flush
//! happens as soon as a round passes with nothing new, or the buffer or the number of rounds
//! reaches its cap. A lone event (the usual case for a real worker's token stream, with
//! milliseconds between tokens) is therefore written after one scheduler round; a burst goes
//! out in one write. Nothing is held across an idle period: a deferral always re-polls.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Flush without deferring once this much is buffered.
const MAX_BUFFERED: usize = 64 * 1024;
/// Flush without deferring after this many consecutive deferrals.
const MAX_DEFERRALS: u8 = 32;

pub struct CoalescingStream<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` is already written to `inner`.
    written: usize,
    /// `buf.len()` at the last deferral: a flush with nothing new since then writes.
    seen: usize,
    deferrals: u8,
}

impl<S> CoalescingStream<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
            seen: 0,
            deferrals: 0,
        }
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<S: AsyncWrite + Unpin> CoalescingStream<S> {
    /// Writes everything buffered to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        self.seen = 0;
        self.deferrals = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room before accepting more bytes when the buffer is at its cap.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending() >= MAX_BUFFERED {
            self.poll_drain(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CoalescingStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CoalescingStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        let mut n = 0;
        for slice in slices {
            this.buf.extend_from_slice(slice);
            n += slice.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending() == 0 {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        let grew = this.buf.len() > this.seen;
        if grew && this.deferrals < MAX_DEFERRALS && this.pending() < MAX_BUFFERED {
            // Let the rest of this burst arrive first; the self-wake guarantees a re-poll.
            this.seen = this.buf.len();
            this.deferrals += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Records every write that reaches the socket; can refuse writes to simulate a full one.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        full: bool,
        shut: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if this.full {
                return Poll::Pending;
            }
            this.writes.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn write(s: &mut CoalescingStream<Recorder>, data: &[u8]) {
        let n = Pin::new(s).poll_write(&mut cx(), data);
        assert!(matches!(n, Poll::Ready(Ok(len)) if len == data.len()));
    }

    fn flush(s: &mut CoalescingStream<Recorder>) -> Poll<io::Result<()>> {
        Pin::new(s).poll_flush(&mut cx())
    }

    #[test]
    fn a_burst_written_between_flushes_goes_out_in_one_write() {
        let mut s = CoalescingStream::new(Recorder::default());
        write(&mut s, b"data: 1\n\n");
        assert!(
            flush(&mut s).is_pending(),
            "first flush after new bytes defers"
        );
        write(&mut s, b"data: 2\n\n");
        assert!(
            flush(&mut s).is_pending(),
            "more bytes arrived: defer again"
        );
        assert!(flush(&mut s).is_ready(), "a round with nothing new writes");
        assert_eq!(s.inner.writes, vec![b"data: 1\n\ndata: 2\n\n".to_vec()]);
        assert!(
            flush(&mut s).is_ready(),
            "nothing buffered: flush is immediate"
        );
        assert_eq!(s.inner.writes.len(), 1);
    }

    #[test]
    fn deferral_is_bounded_by_rounds_and_by_size() {
        let mut s = CoalescingStream::new(Recorder::default());
        for _ in 0..MAX_DEFERRALS {
            write(&mut s, b"x");
            assert!(flush(&mut s).is_pending());
        }
        write(&mut s, b"x");
        assert!(flush(&mut s).is_ready(), "round cap reached: written");
        assert_eq!(
            s.inner.writes.concat().len(),
            usize::from(MAX_DEFERRALS) + 1
        );

        let mut s = CoalescingStream::new(Recorder::default());
        write(&mut s, &vec![b'y'; MAX_BUFFERED]);
        assert!(
            flush(&mut s).is_ready(),
            "size cap reached: written at once"
        );
        assert_eq!(s.inner.writes.concat().len(), MAX_BUFFERED);
    }

    #[test]
    fn a_full_socket_keeps_the_bytes_until_it_drains_and_shutdown_flushes_first() {
        let mut s = CoalescingStream::new(Recorder {
            full: true,
            ..Recorder::default()
        });
        write(&mut s, b"abc");
        assert!(flush(&mut s).is_pending());
        assert!(flush(&mut s).is_pending(), "socket full: still pending");
        assert!(s.inner.writes.is_empty());
        s.inner.full = false;
        write(&mut s, b"def");
        let shut = Pin::new(&mut s).poll_shutdown(&mut cx());
        assert!(matches!(shut, Poll::Ready(Ok(()))));
        assert!(s.inner.shut);
        assert_eq!(s.inner.writes.concat(), b"abcdef");
    }

    #[test]
    fn vectored_writes_are_buffered_whole() {
        let mut s = CoalescingStream::new(Recorder::default());
        let slices = [
            IoSlice::new(b"head"),
            IoSlice::new(b""),
            IoSlice::new(b"body"),
        ];
        let n = Pin::new(&mut s).poll_write_vectored(&mut cx(), &slices);
        assert!(matches!(n, Poll::Ready(Ok(8))));
        assert!(flush(&mut s).is_pending());
        assert!(flush(&mut s).is_ready());
        assert_eq!(s.inner.writes, vec![b"headbody".to_vec()]);
    }
}
