//! The agent APIs (OpenAI Responses, Anthropic Messages) bridged onto chat completions: each
//! request is rewritten as a chat request, and the chat answer — a whole completion or its
//! chunk stream — is rewritten into the client's API.
//!
//! Pure functions and state machines over bytes, no I/O: the frontend wires them around its
//! chat pipeline (so routing, retries and migration treat these requests exactly like chat),
//! and the benches measure them without building the server.

pub mod chat_out;
pub mod chunk_scan;
pub mod messages_reply;
pub mod messages_request;
pub mod messages_stream;
pub mod responses_reply;
pub mod responses_request;
pub mod responses_stream;
pub mod responses_text_events;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

/// A request that cannot be bridged: the message and the parameter it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeError {
    pub message: String,
    pub param: Option<String>,
}

impl BridgeError {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
        }
    }
}

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BridgeError {}

/// Turns the events of a chat completion stream into another API's events.
///
/// The frontend feeds it every `data:` payload of the chat stream it relays: chunks,
/// the in-band error event a failed stream ends with, and `[DONE]`. After
/// [`StreamBridge::finished`] nothing more is written.
pub trait StreamBridge: Send {
    /// One chat chunk payload (not `[DONE]`, not an error event).
    fn chunk(&mut self, data: &[u8], out: &mut BytesMut);
    /// The chat stream finished normally (`[DONE]`).
    fn done(&mut self, out: &mut BytesMut);
    /// The chat stream failed after it started; the client's stream ends with its API's
    /// failure event.
    fn failed(&mut self, message: &str, out: &mut BytesMut);
    fn finished(&self) -> bool;

    /// Dispatches one chat stream payload to the right method.
    fn event(&mut self, data: &[u8], out: &mut BytesMut) {
        if data == crate::sse::DONE {
            return self.done(out);
        }
        if let Some(message) = chat_out::stream_error(data) {
            return self.failed(&message, out);
        }
        self.chunk(data, out);
    }
}

/// Writes one named SSE event: `event: <name>\ndata: <json>\n\n`. Serializing these types
/// cannot fail (strings, numbers and maps with string keys), so an error writes nothing.
pub fn write_event(out: &mut BytesMut, name: &str, data: &impl Serialize) {
    let start = out.len();
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    if serde_json::to_writer(out.writer(), data).is_err() {
        out.truncate(start);
        return;
    }
    out.put_slice(b"\n\n");
}

/// Writes `n` in decimal, without the String a `to_string()` would allocate (this runs for
/// every streamed token: sequence numbers and indices).
pub fn put_u64(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

/// A fresh id with `prefix` (`resp_`, `msg_`, `fc_`, ...): 24 hex digits from the clock
/// and a process-wide counter, unique enough for ids nobody looks up (nothing is stored).
pub fn new_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{prefix}{nanos:016x}{n:08x}")
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_written_as_to_string_writes_them() {
        for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            let mut out = bytes::BytesMut::new();
            super::put_u64(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }
}
