//! Reading a worker's stream, shared by the chat relay ([`super::relay`]) and the native
//! agent-API relay ([`super::native_relay`]): the next frame into the SSE framer, or why the
//! stream failed — a broken connection, an early close, or a stall.
//!
//! A stall is judged by data events, not frames: a worker that stalls while keeping its
//! connection warm with comments is still caught. The timer is armed for the earliest possible
//! stall and re-armed lazily from the last data event when it fires, so the hot path does not
//! touch the timer wheel for every frame.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use switchyard_protocol::sse::Framer;
use tokio::time::{Instant, Sleep};

use super::failure::Cause;

/// When the stream last carried data, and the timer that fires when it has not for too long.
pub struct StallClock {
    stall: Duration,
    timer: Pin<Box<Sleep>>,
    last_data: Instant,
}

impl std::fmt::Debug for StallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallClock")
            .field("stall", &self.stall)
            .field("last_data", &self.last_data)
            .finish()
    }
}

impl StallClock {
    pub fn new(stall: Duration, now: Instant) -> Self {
        Self {
            stall,
            timer: Box::pin(tokio::time::sleep_until(now + stall)),
            last_data: now,
        }
    }

    /// A data event arrived at `at`.
    pub fn data(&mut self, at: Instant) {
        self.last_data = at;
    }

    /// A new upstream starts (a migration's continuation): the clock starts over now.
    pub fn restart(&mut self, now: Instant) {
        self.last_data = now;
        self.timer.as_mut().reset(now + self.stall);
    }

    /// True when no data event came for the stall timeout.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last_data + self.stall;
            if deadline <= Instant::now() {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

/// What one poll of the worker's stream gave.
#[derive(Debug)]
pub enum Pulled {
    /// A frame was pushed into the framer (its events are ready to take).
    Frame,
    /// The stream failed: why, and the detail for the log.
    Failed(Cause, String),
    /// Nothing yet.
    Pending,
}

/// Polls `upstream` once: its next frame goes into `framer`. `early_close` names what a close
/// came before (`[DONE]` for chat, the terminal event for the native APIs).
pub fn pull<B>(
    upstream: &mut B,
    framer: &mut Framer,
    clock: &mut StallClock,
    cx: &mut Context<'_>,
    early_close: &str,
) -> Pulled
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    match Pin::new(upstream).poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => {
            if let Some(data) = frame.data_ref() {
                framer.push(data);
            }
            Pulled::Frame
        }
        Poll::Ready(Some(Err(e))) => {
            Pulled::Failed(Cause::BrokenStream, format!("connection error: {e}"))
        }
        Poll::Ready(None) => {
            Pulled::Failed(Cause::BrokenStream, format!("closed before {early_close}"))
        }
        Poll::Pending if clock.poll_stalled(cx) => {
            let ms = u64::try_from(clock.stall.as_millis()).unwrap_or(u64::MAX);
            Pulled::Failed(Cause::Stalled(ms), format!("no data for {ms} ms"))
        }
        Poll::Pending => Pulled::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_cx() -> Context<'static> {
        Context::from_waker(std::task::Waker::noop())
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_is_judged_from_the_last_data_event() {
        let start = Instant::now();
        let mut clock = StallClock::new(Duration::from_millis(100), start);
        let mut cx = noop_cx();
        assert!(!clock.poll_stalled(&mut cx));
        tokio::time::advance(Duration::from_millis(60)).await;
        clock.data(Instant::now());
        tokio::time::advance(Duration::from_millis(60)).await;
        // 120 ms since the start, 60 since the data: the timer fired, but data came since.
        assert!(!clock.poll_stalled(&mut cx), "re-armed from the last data");
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(clock.poll_stalled(&mut cx), "110 ms without data");
        clock.restart(Instant::now());
        assert!(
            !clock.poll_stalled(&mut cx),
            "a new upstream starts the clock over"
        );
    }
}
