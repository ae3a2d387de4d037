//! The chat relay's frames fed to a [`StreamBridge`] without framing the stream a second time.
//!
//! The relay already re-frames the worker's bytes into whole events and sends each as one
//! frame in the canonical form `data: <payload>\n\n` (the worker's own bytes when they are
//! in that form, else [`crate::sse::encode_data`]). Pushing those frames through another
//! [`Framer`] copied every event into its buffer and searched it for line ends again
//! (~9 k instructions per 16-token stream, docs/benchmarks.md); the payload is simply a
//! slice of the frame. A frame of any other shape — which the relay does not send — still
//! goes through a framer, so the bridge sees the same payloads either way.

use bytes::BytesMut;

use super::StreamBridge;
use crate::sse::{canonical_payload, Framer};

/// Feeds a bridge the payloads of the frames a chat relay sends.
#[derive(Debug, Default)]
pub struct RelayFrames {
    /// Only used for frames that are not one canonical event (and what follows them while
    /// an event is still partial).
    framer: Framer,
}

impl RelayFrames {
    /// Hands each event payload in `frame` to `bridge`, which writes its events to `out`.
    pub fn feed(&mut self, frame: &[u8], bridge: &mut dyn StreamBridge, out: &mut BytesMut) {
        if !self.framer.has_partial() {
            if let Some(payload) = canonical_payload(frame) {
                return bridge.event(payload, out);
            }
        }
        self.framer.push(frame);
        loop {
            match self.framer.next_event() {
                Ok(Some(event)) => bridge.event(&event.data, out),
                Ok(None) => return,
                Err(e) => return bridge.failed(&e.to_string(), out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the payloads it is given.
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>, bool);

    impl StreamBridge for Recorder {
        fn chunk(&mut self, data: &[u8], _: &mut BytesMut) {
            self.0.push(data.to_vec());
        }
        fn done(&mut self, _: &mut BytesMut) {
            self.0.push(crate::sse::DONE.to_vec());
            self.1 = true;
        }
        fn failed(&mut self, message: &str, _: &mut BytesMut) {
            self.0.push(format!("failed: {message}").into_bytes());
            self.1 = true;
        }
        fn finished(&self) -> bool {
            self.1
        }
    }

    fn payloads(frames: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut feed = RelayFrames::default();
        let mut bridge = Recorder::default();
        let mut out = BytesMut::new();
        for frame in frames {
            feed.feed(frame, &mut bridge, &mut out);
        }
        bridge.0
    }

    #[test]
    fn canonical_frames_and_any_other_split_give_the_same_payloads() {
        let stream: &[u8] = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let expected = vec![
            b"{\"a\":1}".to_vec(),
            b"{\"b\":2}".to_vec(),
            b"[DONE]".to_vec(),
        ];
        let per_event: [&[u8]; 3] = [
            b"data: {\"a\":1}\n\n",
            b"data: {\"b\":2}\n\n",
            b"data: [DONE]\n\n",
        ];
        assert_eq!(payloads(&per_event), expected);
        assert_eq!(payloads(&[stream]), expected);
        for at in 1..stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(payloads(&[a, b]), expected, "split at {at}");
        }
    }

    #[test]
    fn a_frame_after_a_partial_event_completes_it_rather_than_being_read_alone() {
        // The second frame is canonical on its own, but it belongs after the partial line.
        let got = payloads(&[b"data: {\"a\":", b"data: 1}\n\n"]);
        assert_eq!(got, vec![b"{\"a\":data: 1}".to_vec()]);
    }
}
