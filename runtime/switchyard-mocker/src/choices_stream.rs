//! Serving a request with [`Choices`]: the whole response, or its SSE stream — each
//! choice's role chunk, its deltas step by step, its finish chunk, the optional usage chunk,
//! `[DONE]` — with the same fault behaviour as the plain stream (`stream.rs`).

use std::convert::Infallible;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, StreamBody};
use switchyard_protocol::sse::encode_done;

use crate::choices::Choices;
use crate::faults::Faults;
use crate::sequence::Sequence;
use crate::wire::Envelope;

/// Runs the request to the end and answers the whole response.
pub(crate) async fn whole(mut seq: Sequence, mut choices: Choices, envelope: &Envelope) -> Bytes {
    seq.prefill().await;
    while let Some(token) = seq.next_token().await {
        if choices.advance(token) {
            seq.stop_early();
        }
    }
    choices.finish_rest();
    choices.response(envelope, choices.usage(seq.usage().prompt_tokens))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prefill,
    Steps,
    Usage,
    Done,
    End,
}

struct Events {
    seq: Sequence,
    choices: Choices,
    envelope: Envelope,
    include_usage: bool,
    phase: Phase,
}

/// The streaming body.
pub(crate) fn body(
    seq: Sequence,
    choices: Choices,
    envelope: Envelope,
    include_usage: bool,
) -> UnsyncBoxBody<Bytes, Infallible> {
    let events = Events {
        seq,
        choices,
        envelope,
        include_usage,
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
                    if self.seq.errors_now() {
                        self.phase = Phase::Done;
                        return Some(Faults::error_event());
                    }
                    self.phase = Phase::Steps;
                    let roles = self.choices.role_chunks(&self.envelope);
                    // Completions have no role chunk.
                    if !roles.is_empty() {
                        return Some(roles);
                    }
                }
                Phase::Steps => {
                    if self.seq.errors_now() {
                        self.phase = Phase::Done;
                        return Some(Faults::error_event());
                    }
                    if let Some(every) = self.seq.stall_keepalive() {
                        tokio::time::sleep(every).await;
                        return Some(Bytes::from_static(b": keep-alive\n\n"));
                    }
                    match self.seq.next_token().await {
                        Some(token) => {
                            if self.choices.advance(token) {
                                self.seq.stop_early();
                            }
                        }
                        None => {
                            self.choices.finish_rest();
                            self.phase = Phase::Usage;
                        }
                    }
                    let chunks = self.choices.step_chunks(&self.envelope);
                    // A step whose text may start a stop string sends nothing yet.
                    if !chunks.is_empty() {
                        return Some(chunks);
                    }
                }
                Phase::Usage => {
                    self.phase = Phase::Done;
                    if self.include_usage {
                        let usage = self.choices.usage(self.seq.usage().prompt_tokens);
                        return Some(self.envelope.usage_chunk(usage));
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
