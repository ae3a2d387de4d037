//! The agent APIs (OpenAI Responses, Anthropic Messages) bridged onto chat completions: each
//! request is rewritten as a chat request, and the chat answer — a whole completion or its
//! chunk stream — is rewritten into the client's API.
//!
//! Pure functions and state machines over bytes, no I/O: the frontend wires them around its
//! chat pipeline (so routing, retries and migration treat these requests exactly like chat),
//! and the benches measure them without building the server.

pub mod chat_out;
pub mod chunk_scan;
pub mod messages_events;
pub mod messages_reply;
pub mod messages_request;
pub mod messages_stream;
pub mod relay_frames;
pub mod response_json;
pub mod responses_reply;
pub mod responses_request;
pub mod responses_stream;
pub mod responses_text_events;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use chat_out::Chunk;
use chunk_scan::{ChunkScanner, Scanned};

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
    /// One chat stream payload other than `[DONE]`: a chunk, or the in-band error event
    /// a failed stream ends with ([`read_chunk`] tells them apart).
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
        self.chunk(data, out);
    }
}

/// A chat stream payload read as a chunk, or why the stream failed: the worker's in-band
/// error event (`{"error":…}`, its message) or bytes that are not a chat chunk.
///
/// The scan notes a top-level `error` key on its way, so an ordinary chunk is read once;
/// only a payload that has one, or that is no chunk, is probed as an error event.
pub fn read_chunk<'a>(scanner: &mut ChunkScanner, data: &'a [u8]) -> Result<Chunk<'a>, String> {
    match scanner.scan(data) {
        Ok(Scanned {
            chunk,
            error_key: false,
        }) => Ok(chunk),
        scanned => match chat_out::stream_error(data) {
            Some(message) => Err(message),
            None => scanned
                .map(|s| s.chunk)
                .map_err(|e| format!("worker sent an invalid chunk: {e}")),
        },
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

/// Writes `s` as a JSON string, byte for byte as serde_json writes it: verbatim between
/// quotes when nothing in it needs escaping (a quote, a backslash or a control character —
/// the only characters serde_json escapes), which is nearly every streamed token; through
/// serde_json otherwise.
pub fn put_json_str(out: &mut BytesMut, s: &str) {
    if chunk_scan::plain_run(s.as_bytes()) == s.len() {
        out.put_u8(b'"');
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
        return;
    }
    let start = out.len();
    if serde_json::to_writer(out.writer(), s).is_err() {
        // Not reachable: writing a string into memory cannot fail.
        out.truncate(start);
        out.put_slice(b"\"\"");
    }
}

/// `s` as a JSON string ([`put_json_str`]'s bytes).
pub fn json_str(s: &str) -> String {
    let mut out = BytesMut::with_capacity(s.len() + 2);
    put_json_str(&mut out, s);
    String::from_utf8(out.to_vec()).unwrap_or_default()
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
    id_of(prefix, nanos, n)
}

/// `{prefix}{nanos:016x}{n:08x}`, without the formatting machinery (every translated
/// stream makes two or three of these).
fn id_of(prefix: &str, nanos: u64, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    // At least eight digits for `n`, and all of them, as `{:08x}` writes it.
    let width = ((64 - n.leading_zeros() as usize).div_ceil(4)).max(8);
    for (value, digits) in [(nanos, 16), (n, width)] {
        for i in (0..digits).rev() {
            id.push(char::from(HEX[(value >> (i * 4)) as usize & 0xf]));
        }
    }
    id
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
    fn strings_are_written_as_serde_json_writes_them() {
        let mut every_char: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        every_char.extend(
            [
                "",
                "plain token",
                " é 日本語 😀",
                "a\"b",
                "c\\d",
                "e\nf",
                "\u{1f}",
                "\u{7f}",
            ]
            .map(String::from),
        );
        for s in every_char {
            let mut out = bytes::BytesMut::new();
            super::put_json_str(&mut out, &s);
            assert_eq!(
                &out[..],
                serde_json::to_string(&s).unwrap().as_bytes(),
                "{s:?}"
            );
            assert_eq!(super::json_str(&s), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn ids_are_written_as_format_writes_them() {
        for (nanos, n) in [
            (0, 0),
            (1, 1),
            (0x1234_5678_9abc_def0, 0xffff_ffff),
            (u64::MAX, 0x1_0000_0000),
            (7, u64::MAX),
            (9, 0x1000_0000),
            (9, 0x1_0000_000f),
        ] {
            assert_eq!(
                super::id_of("msg_", nanos, n),
                format!("msg_{nanos:016x}{n:08x}")
            );
        }
    }

    #[test]
    fn numbers_are_written_as_to_string_writes_them() {
        for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            let mut out = bytes::BytesMut::new();
            super::put_u64(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }
}
