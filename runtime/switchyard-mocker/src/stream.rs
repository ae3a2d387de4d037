//! The SSE body of a streamed completion: role chunk (chat), one chunk per token (carrying the
//! usage so far with vLLM's `continuous_usage_stats`), the `finish_reason` chunk, the optional
//! usage chunk, then `data: [DONE]`. Under the fault
//! knobs: keep-alive comments while stalled, or an in-band error event and `[DONE]` instead
//! of the rest.
//!
//! The body owns the [`Sequence`]: hyper drops the body when the client disconnects, which
//! stops generation right there and lets the sequence count itself cancelled.

use std::convert::Infallible;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, StreamBody};
use switchyard_protocol::sse::encode_done;
use switchyard_protocol::StreamOptions;

use crate::faults::Faults;
use crate::sequence::Sequence;
use crate::wire::Envelope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prefill,
    Tokens,
    Usage,
    Done,
    End,
}

#[derive(Debug)]
struct Events {
    seq: Sequence,
    envelope: Envelope,
    include_usage: bool,
    continuous_usage: bool,
    phase: Phase,
}

/// Whether `stream_options` asks for usage on every chunk: like vLLM, only together with
/// `include_usage`.
pub(crate) fn continuous_usage(options: Option<&StreamOptions>) -> bool {
    options.is_some_and(|o| {
        o.include_usage == Some(true)
            && o.extra
                .small_value("continuous_usage_stats", 8)
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
    })
}

/// The streaming response body for `seq`.
pub(crate) fn body(
    seq: Sequence,
    envelope: Envelope,
    include_usage: bool,
    continuous_usage: bool,
) -> UnsyncBoxBody<Bytes, Infallible> {
    let events = Events {
        seq,
        envelope,
        include_usage,
        continuous_usage,
        phase: Phase::Prefill,
    };
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.next_event().await?;
        Some((Ok(Frame::data(event)), events))
    });
    StreamBody::new(stream).boxed_unsync()
}

impl Events {
    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            match self.phase {
                Phase::Prefill => {
                    self.seq.prefill().await;
                    self.phase = Phase::Tokens;
                    if self.seq.errors_now() {
                        self.phase = Phase::Done;
                        return Some(Faults::error_event());
                    }
                    if let Some(chunk) = self.envelope.role_chunk() {
                        return Some(chunk);
                    }
                }
                Phase::Tokens => {
                    if self.seq.errors_now() {
                        self.phase = Phase::Done;
                        return Some(Faults::error_event());
                    }
                    if let Some(every) = self.seq.stall_keepalive() {
                        tokio::time::sleep(every).await;
                        return Some(Bytes::from_static(b": keep-alive\n\n"));
                    }
                    if let Some(token) = self.seq.next_token().await {
                        return Some(match self.continuous_usage {
                            true => self
                                .envelope
                                .token_chunk_with_usage(token, self.seq.usage()),
                            false => self.envelope.token_chunk(token),
                        });
                    }
                    self.phase = Phase::Usage;
                    return Some(self.envelope.finish_chunk());
                }
                Phase::Usage => {
                    self.phase = Phase::Done;
                    if self.include_usage {
                        return Some(self.envelope.usage_chunk(self.seq.usage()));
                    }
                }
                Phase::Done => {
                    self.phase = Phase::End;
                    return Some(encode_done());
                }
                Phase::End => return None,
            }
        }
    }
}
