//! Server-sent events: a re-framer that turns arbitrarily split upstream bytes into whole
//! events, and the encoders for what Switchyard sends downstream.
//!
//! The relay forwards *whole* events only. If a worker dies in the middle of an event, the
//! partial bytes are dropped and the client gets a well-formed in-band error event instead of
//! half a JSON object followed by something else.

use bytes::{Bytes, BytesMut};

/// The payload of the terminal `data: [DONE]` event.
pub const DONE: &[u8] = b"[DONE]";

/// One whole event: the `data` lines joined with `\n` (SSE's rule). Events without data
/// (comments, `retry:`, keep-alives) are not surfaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub data: Bytes,
    /// The event exactly as it arrived, when that is already its canonical encoding
    /// (`data: <data>\n\n`, as [`encode_data`] would write it): a relay that forwards the
    /// data unchanged can send these bytes without re-encoding.
    pub raw: Option<Bytes>,
}

impl Event {
    pub fn is_done(&self) -> bool {
        self.data.as_ref() == DONE
    }

    /// The event's canonical wire form.
    pub fn encoded(&self) -> Bytes {
        match &self.raw {
            Some(raw) => raw.clone(),
            None => encode_data(&self.data),
        }
    }
}

/// The framer refused input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// One event grew past the configured size limit.
    EventTooLarge { limit: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EventTooLarge { limit } => write!(f, "SSE event larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Incremental SSE parser (WHATWG rules for line endings: `\n`, `\r\n` or `\r`).
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Bytes of `buf` already consumed as complete lines.
    data: BytesMut,
    has_data: bool,
    limit: usize,
    /// `buf[..scanned]` holds no line terminator: the next search resumes here, so a line that
    /// arrives one byte at a time is scanned once in total, not once per push.
    scanned: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(16 * 1024 * 1024)
    }
}

impl Framer {
    /// A framer that fails when a single event exceeds `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            data: BytesMut::new(),
            has_data: false,
            limit,
            scanned: 0,
        }
    }

    /// Appends bytes as they arrived from the network.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Result<Option<Event>, FrameError> {
        loop {
            let Some((line_len, term_len)) = self.find_line() else {
                if self.buf.len() + self.data.len() > self.limit {
                    return Err(FrameError::EventTooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            self.scanned = 0;
            if let Some(event) = self.take_canonical_event(line_len, term_len) {
                return Ok(Some(event));
            }
            let line = self.buf.split_to(line_len + term_len);
            let line = &line[..line_len];
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    let data = self.data.split().freeze();
                    return Ok(Some(Event { data, raw: None }));
                }
                continue;
            }
            self.take_field(line)?;
        }
    }

    /// The fast path for what nearly every worker sends: one `data: ` line ended by `\n\n`
    /// at the front of the buffer, outside any other event. Taken without copying; anything
    /// else (several data lines, other fields, `\r` line endings, a blank line not yet
    /// arrived) goes the general way.
    fn take_canonical_event(&mut self, line_len: usize, term_len: usize) -> Option<Event> {
        const PREFIX: &[u8] = b"data: ";
        if self.has_data
            || line_len.saturating_sub(PREFIX.len()) > self.limit
            || term_len != 1
            || self.buf.get(line_len) != Some(&b'\n')
            || self.buf.get(line_len + 1) != Some(&b'\n')
            || !self.buf.starts_with(PREFIX)
        {
            return None;
        }
        let raw = self.buf.split_to(line_len + 2).freeze();
        let data = raw.slice(PREFIX.len()..line_len);
        Some(Event {
            data,
            raw: Some(raw),
        })
    }

    /// Finds the first complete line of `buf`: (length without terminator, terminator
    /// length), searching only bytes not searched before. A lone `\r` at the very end is not
    /// yet complete: a `\n` may follow in the next chunk.
    fn find_line(&mut self) -> Option<(usize, usize)> {
        let from = self.scanned;
        let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[from..]) else {
            self.scanned = self.buf.len();
            return None;
        };
        let i = from + offset;
        if self.buf[i] == b'\n' {
            return Some((i, 1));
        }
        match self.buf.get(i + 1) {
            Some(b'\n') => Some((i, 2)),
            Some(_) => Some((i, 1)),
            None => {
                self.scanned = i;
                None
            }
        }
    }

    /// True when bytes of an unfinished event are buffered (a stream that ends now was cut).
    pub fn has_partial(&self) -> bool {
        self.has_data || !self.buf.is_empty()
    }

    fn take_field(&mut self, line: &[u8]) -> Result<(), FrameError> {
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if name == b"data" {
            if self.has_data {
                self.data.extend_from_slice(b"\n");
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
            if self.data.len() > self.limit {
                return Err(FrameError::EventTooLarge { limit: self.limit });
            }
        }
        Ok(())
    }
}

/// Encodes `data: <payload>\n\n`.
pub fn encode_data(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// The payload of `frame` when it is exactly one event in the canonical form
/// [`encode_data`] writes (`data: <payload>\n\n`, the payload on one line): what the
/// [`Framer`] would take out of it, as a slice of it. A consumer of a relay that sends one
/// whole canonical event per frame reads the payloads this way instead of framing again.
pub fn canonical_payload(frame: &[u8]) -> Option<&[u8]> {
    let payload = frame.strip_prefix(b"data: ")?.strip_suffix(b"\n\n")?;
    memchr::memchr2(b'\n', b'\r', payload)
        .is_none()
        .then_some(payload)
}

/// The terminal event.
pub fn encode_done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_events(chunks: &[&[u8]]) -> Vec<String> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            while let Some(e) = f.next_event().unwrap() {
                out.push(String::from_utf8(e.data.to_vec()).unwrap());
            }
        }
        out
    }

    #[test]
    fn frames_regardless_of_how_bytes_are_split() {
        let stream = b"data: {\"a\":1}\n\ndata: x\r\n\r\n: keepalive\n\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n";
        let whole = all_events(&[stream]);
        assert_eq!(whole, vec!["{\"a\":1}", "x", "l1\nl2", "[DONE]"]);
        for split in 1..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(all_events(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(all_events(&bytes), whole);
    }

    #[test]
    fn canonical_events_keep_their_wire_bytes_and_others_are_re_encoded() {
        let mut f = Framer::default();
        f.push(b"data: {\"a\":1}\n\ndata:{\"b\":2}\n\ndata: x\r\n\r\ndata: l1\ndata: l2\n\n");
        let a = f.next_event().unwrap().unwrap();
        assert_eq!(a.raw.as_deref(), Some(&b"data: {\"a\":1}\n\n"[..]));
        assert_eq!(a.encoded(), encode_data(&a.data));
        for expected in ["{\"b\":2}", "x", "l1\nl2"] {
            let e = f.next_event().unwrap().unwrap();
            assert_eq!(e.data, expected.as_bytes(), "data of {expected:?}");
            assert_eq!(
                e.raw, None,
                "{expected:?} is not in canonical form on the wire"
            );
            assert_eq!(e.encoded(), encode_data(expected.as_bytes()));
        }
        assert_eq!(f.next_event().unwrap(), None);
    }

    #[test]
    fn an_event_after_a_comment_or_a_lone_cr_line_keeps_its_wire_bytes() {
        let mut f = Framer::default();
        f.push(b": keep-alive\n\ndata: {\"a\":1}\n\n");
        let e = f.next_event().unwrap().unwrap();
        assert_eq!(e.raw.as_deref(), Some(&b"data: {\"a\":1}\n\n"[..]));
        // Fed byte by byte, the blank line arrives after the data line: re-encoded instead.
        let mut f = Framer::default();
        let mut events = Vec::new();
        for b in b"data: x\n\n" {
            f.push(&[*b]);
            events.extend(f.next_event().unwrap());
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].encoded(), encode_data(b"x"));
    }

    #[test]
    fn a_canonical_frame_yields_the_payload_the_framer_would() {
        let canonical: [(&[u8], &[u8]); 4] = [
            (b"data: {\"a\":1}\n\n", b"{\"a\":1}"),
            (b"data: \n\n", b""),
            (b"data:  lead\n\n", b" lead"),
            (b"data: [DONE]\n\n", b"[DONE]"),
        ];
        for (frame, payload) in canonical {
            assert_eq!(canonical_payload(frame), Some(payload));
            let mut f = Framer::default();
            f.push(frame);
            assert_eq!(f.next_event().unwrap().unwrap().data, payload);
            assert!(!f.has_partial());
        }
        // Whole events in another form, several events, or part of one: left to a framer.
        let other: [&[u8]; 6] = [
            b"data: l1\ndata: l2\n\n",
            b"data: a\rb\n\n",
            b"data: x\r\n\r\n",
            b"data:x\n\n",
            b": comment\n\ndata: y\n\n",
            b"data: z\n",
        ];
        for frame in other {
            assert_eq!(canonical_payload(frame), None, "{frame:?}");
        }
    }

    #[test]
    fn cr_only_line_endings_work() {
        // A trailing lone CR is ambiguous until the next byte shows it is not CRLF.
        assert_eq!(
            all_events(&[b"data: a\r\rdata: b\r", b"\rdata: c\n\n"]),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn partial_event_is_reported_and_not_emitted() {
        let mut f = Framer::default();
        f.push(b"data: {\"trunc");
        assert_eq!(f.next_event().unwrap(), None);
        assert!(f.has_partial());
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut f = Framer::new(8);
        f.push(b"data: 0123456789");
        assert!(f.next_event().is_err());
    }

    #[test]
    fn an_oversized_event_in_canonical_form_is_an_error_too() {
        let mut f = Framer::new(8);
        f.push(b"data: 0123456789\n\n");
        assert!(f.next_event().is_err());
        let mut f = Framer::new(10);
        f.push(b"data: 0123456789\n\n");
        assert_eq!(f.next_event().unwrap().unwrap().data, &b"0123456789"[..]);
    }

    #[test]
    fn done_is_recognised() {
        let mut f = Framer::default();
        f.push(b"data: [DONE]\n\n");
        assert!(f.next_event().unwrap().unwrap().is_done());
    }
}
