//! A response body that rewrites the chat relay's SSE events into another API's events.
//!
//! The relay sends whole `data:` events, one per frame (chunks, an in-band error event,
//! `[DONE]`); each payload is handed to a [`StreamBridge`] as a slice of its frame, without
//! framing the stream again ([`RelayFrames`]). If the relay ends without `[DONE]` — it
//! should not — the bridge still ends the client's stream with its API's failure event.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use switchyard_protocol::bridge::relay_frames::RelayFrames;
use switchyard_protocol::bridge::StreamBridge;

use crate::body::Body;

pub struct BridgedBody {
    inner: Body,
    frames: RelayFrames,
    bridge: Box<dyn StreamBridge>,
    out: BytesMut,
    /// The inner body has ended.
    ended: bool,
}

impl BridgedBody {
    pub fn new(inner: Body, bridge: Box<dyn StreamBridge>) -> Self {
        Self {
            inner,
            frames: RelayFrames::default(),
            bridge,
            out: BytesMut::new(),
            ended: false,
        }
    }
}

impl http_body::Body for BridgedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            // After the bridge finished, the relay's remaining frames (its `[DONE]`) are
            // read and dropped, so that it finishes its own bookkeeping normally.
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.frames.feed(data, this.bridge.as_mut(), &mut this.out);
                    }
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => {
                    this.ended = true;
                    if !this.bridge.finished() {
                        this.bridge
                            .failed("the stream ended before it finished", &mut this.out);
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use switchyard_protocol::bridge::messages_stream::MessagesStream;

    fn bridge() -> Box<dyn StreamBridge> {
        Box::new(MessagesStream::new(
            &serde_json::from_value(serde_json::json!({"model":"m","max_tokens":5,
                "messages":[{"role":"user","content":"hi"}]}))
            .unwrap(),
        ))
    }

    async fn collect(inner: &'static [u8]) -> String {
        let body = BridgedBody::new(Body::full(Bytes::from_static(inner)), bridge());
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_chat_stream_is_rewritten_event_by_event() {
        let out = collect(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n").await;
        assert!(out.starts_with("event: message_start\n"), "{out}");
        assert!(out.contains("\"text_delta\",\"text\":\"hi\""), "{out}");
        assert!(
            out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_stream_cut_short_ends_with_an_error_event() {
        let out =
            collect(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")
                .await;
        assert!(
            out.ends_with("\"message\":\"the stream ended before it finished\"}}\n\n"),
            "{out}"
        );
        assert!(out.contains("event: error\n"), "{out}");
    }
}
