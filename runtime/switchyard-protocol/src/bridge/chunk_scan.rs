//! A chat chunk decoder that reads only what the bridges use: `choices[].index`, `.delta`
//! (`content`, `tool_calls`), `.finish_reason`, `.stop_reason` and `usage`. Everything else
//! (`id`, `object`, `created`, `model`, `logprobs`, `role`, SGLang's `reasoning_content` and
//! `matched_stop`, ...) is stepped over without being decoded.
//!
//! Why not serde: the bridges decode one chunk per streamed token, and serde_json's derived
//! decoder cost ~4.6 k instructions per chunk (callgrind, docs/benchmarks.md) — more than
//! the rest of the translation. This walks the bytes once, borrows escape-free strings and
//! hands the rare parts (escaped strings, `tool_calls`, `usage`, a non-null `stop_reason`)
//! to serde_json on their own byte span, so it yields exactly the [`Chunk`] serde would.
//! The tests check that on real vLLM and SGLang chunk shapes, and that what serde rejects
//! in the fields read here is rejected too.

use std::borrow::Cow;

use serde::Deserialize;

use super::chat_out::{Choices, Chunk, ChunkChoice, Delta};

/// serde_json's nesting limit for decoded values. Skipping recurses, so it is bounded too
/// (serde_json steps over ignored values iteratively, without a limit: a deliberate
/// difference, as no engine nests 128 deep).
const MAX_DEPTH: usize = 128;

/// A chunk that is not the JSON a chat chunk must be; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError(String);

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScanError {}

type Result<T> = std::result::Result<T, ScanError>;

/// A scanned chunk, and whether its top level has an `error` key (an in-band error event
/// is then the likelier reading: see [`super::read_chunk`]).
#[derive(Debug, PartialEq)]
pub struct Scanned<'a> {
    pub chunk: Chunk<'a>,
    pub error_key: bool,
}

/// Reads the parts of one streamed chat chunk that the bridges use.
pub fn scan(data: &[u8]) -> Result<Chunk<'_>> {
    scan_from(data, None).map(|(scanned, _, _)| scanned.chunk)
}

/// Scans the chunks of one stream, remembering what the last chunk's top level held before
/// its first key that is read (`choices`, `usage`, `error`).
///
/// Why: an engine writes the same `{"id":…,"object":…,"created":…,"model":…,` before
/// `choices` in every chunk of a stream — most of a chunk's bytes, and all of them stepped
/// over. Those bytes parse the same way wherever they appear (the parse of a prefix depends
/// on its bytes only, and it holds no read key), so a chunk that starts with them resumes
/// right after them, at a key of the top-level object, and reads exactly what a full scan
/// would. A chunk that starts differently is scanned from its first byte and becomes the
/// new reference.
///
/// It also remembers the last chunk that was one plain text token — one choice whose delta
/// holds one escape-free `content` string, nothing else read — as the bytes around that
/// string ([`Shape`]). The next such token differs only in the string, and the parse of
/// the bytes around it cannot depend on an escape-free string's contents; so a chunk made
/// of the same bytes around a string that is escape-free and UTF-8 is that token, without
/// being parsed (the common case: every token of a text stream after the second).
#[derive(Debug, Default, Clone)]
pub struct ChunkScanner {
    prefix: Vec<u8>,
    shape: Option<Shape>,
}

/// A text-token chunk as the bytes before and after its `content` string's body.
#[derive(Debug, Clone, Default)]
struct Shape {
    /// Everything up to the string's opening quote, included.
    head: Vec<u8>,
    /// Everything from the string's closing quote on.
    tail: Vec<u8>,
    /// The choice's index.
    index: u32,
}

impl Shape {
    /// The token of `data`, if it has this shape.
    fn token<'a>(&self, data: &'a [u8]) -> Option<&'a str> {
        let end = data.len().checked_sub(self.tail.len())?;
        if end < self.head.len() || !data.starts_with(&self.head) || !data.ends_with(&self.tail) {
            return None;
        }
        let body = &data[self.head.len()..end];
        if plain_run(body) != body.len() {
            return None;
        }
        std::str::from_utf8(body).ok()
    }

    fn chunk<'a>(&self, token: &'a str) -> Chunk<'a> {
        let mut choices = Choices::default();
        choices.push(ChunkChoice {
            index: self.index,
            delta: Delta {
                content: Some(Cow::Borrowed(token)),
                tool_calls: None,
            },
            finish_reason: None,
            stop_reason: None,
        });
        Chunk {
            choices,
            usage: None,
        }
    }

    /// The choice index of a scanned chunk, if it is a plain text token.
    fn token_index(scanned: &Scanned<'_>) -> Option<u32> {
        let chunk = &scanned.chunk;
        let choice = chunk.choices.get(0)?;
        let token = chunk.choices.len() == 1
            && chunk.usage.is_none()
            && !scanned.error_key
            && matches!(choice.delta.content, Some(Cow::Borrowed(_)))
            && choice.delta.tool_calls.is_none()
            && choice.finish_reason.is_none()
            && choice.stop_reason.is_none();
        token.then_some(choice.index)
    }

    /// Becomes the shape of `data` whose token body lies at `start..end` (reusing its
    /// buffers: a stream changes shape a few times).
    fn set(&mut self, data: &[u8], (start, end): (usize, usize), index: u32) {
        self.head.clear();
        self.head.extend_from_slice(&data[..start]);
        self.tail.clear();
        self.tail.extend_from_slice(&data[end..]);
        self.index = index;
    }
}

impl ChunkScanner {
    pub fn scan<'a>(&mut self, data: &'a [u8]) -> Result<Scanned<'a>> {
        if let Some(shape) = &self.shape {
            if let Some(token) = shape.token(data) {
                let chunk = shape.chunk(token);
                return Ok(Scanned {
                    chunk,
                    error_key: false,
                });
            }
        }
        let resume = (!self.prefix.is_empty() && data.starts_with(&self.prefix))
            .then_some(self.prefix.len());
        let (scanned, prefix_end, body) = scan_from(data, resume)?;
        if let (Some(body), Some(index)) = (body, Shape::token_index(&scanned)) {
            self.shape
                .get_or_insert_with(Shape::default)
                .set(data, body, index);
        }
        if resume.is_none() {
            self.prefix.clear();
            let prefix = &data[..prefix_end.unwrap_or_default()];
            // Only after a `,`: right after the `{`, a `}` could follow as well as a key.
            if prefix.trim_ascii_end().ends_with(b",") {
                self.prefix.extend_from_slice(prefix);
            }
        }
        Ok(scanned)
    }
}

/// Scans `data`, from its first byte or, with `resume`, from that offset, which must be the
/// start of a key of the top-level object, after a `,`, that a full scan reached without
/// having read any key. Also returns where the first read key starts, and where the body
/// of the chunk's `content` string lies if there is exactly one and it is escape-free.
fn scan_from<'a>(data: &'a [u8], resume: Option<usize>) -> Result<ScannedAt<'a>> {
    let mut cur = Cursor {
        data,
        pos: 0,
        key_start: 0,
        text: None,
        texts: 0,
    };
    let mut chunk = Chunk {
        choices: Choices::default(),
        usage: None,
    };
    let mut error_key = false;
    let mut first_read_key = None;
    let mut seen = Seen::default();
    let field = |cur: &mut Cursor<'a>, key: Cow<'a, [u8]>| {
        let key_start = cur.key_start;
        let mut read = || {
            if first_read_key.is_none() {
                first_read_key = Some(key_start);
            }
        };
        match key.as_ref() {
            b"choices" => {
                read();
                seen.first(1, "choices")?;
                cur.array(|cur| {
                    let choice = cur.choice()?;
                    chunk.choices.push(choice);
                    Ok(())
                })?;
            }
            b"usage" => {
                read();
                seen.first(2, "usage")?;
                chunk.usage = cur.nullable_decode()?;
            }
            b"error" => {
                read();
                error_key = true;
                cur.skip(1)?;
            }
            _ => cur.skip(1)?,
        }
        Ok(())
    };
    match resume {
        Some(at) => {
            cur.pos = at;
            cur.fields(true, field)?;
        }
        None => cur.object(0, true, field)?,
    }
    cur.ws();
    if cur.pos != data.len() {
        return Err(cur.error("trailing characters"));
    }
    let scanned = Scanned { chunk, error_key };
    let body = cur.text.filter(|_| cur.texts == 1);
    Ok((scanned, first_read_key, body))
}

/// A scan, where its first read key starts and its one plain `content` body, if any.
type ScannedAt<'a> = (Scanned<'a>, Option<usize>, Option<(usize, usize)>);

/// Which of an object's read fields were already present (one bit each, no allocation per
/// chunk): serde's derive rejects a duplicate field, and so does this.
#[derive(Default)]
struct Seen(u8);

impl Seen {
    fn first(&mut self, bit: u8, field: &str) -> Result<()> {
        if self.0 & bit != 0 {
            return Err(ScanError(format!("duplicate field `{field}`")));
        }
        self.0 |= bit;
        Ok(())
    }
}

/// Bytes that end the fast run inside a string: the quote, a backslash, control characters.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// How many bytes at the start of `bytes` are plain string content (not a quote, a
/// backslash or a control character). Eight bytes at a time: the classic "has a zero /
/// has a byte below n" word tricks, whose lowest flagged byte is always a true match;
/// strings are most of a chunk's bytes, so this loop is most of the scanner's cost.
pub(crate) fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut n = 0;
    for word in words.by_ref() {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let hits = zero_in(w ^ (ONES * u64::from(b'"')))
            | zero_in(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hits != 0 {
            return n + (hits.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + words
        .remainder()
        .iter()
        .position(|&b| STRING_STOP[b as usize])
        .unwrap_or(words.remainder().len())
}

/// A quoted JSON string with escapes, decoded by serde_json (rare: engines escape only
/// quotes, backslashes, control characters and, some, non-ASCII text).
fn unescape(quoted: &[u8], start: usize) -> Result<String> {
    serde_json::from_slice::<String>(quoted)
        .map_err(|e| ScanError(format!("{e} (string at byte {start})")))
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the key of the field being read starts (its opening quote).
    key_start: usize,
    /// The body of the last escape-free `content` string read, and how many `content`
    /// fields were read ([`Shape`]).
    text: Option<(usize, usize)>,
    texts: u32,
}

impl<'a> Cursor<'a> {
    fn error(&self, what: &str) -> ScanError {
        ScanError(format!("{what} at byte {}", self.pos))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.data.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.data.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8, what: &str) -> Result<()> {
        if self.peek() != Some(byte) {
            return Err(self.error(what));
        }
        self.pos += 1;
        Ok(())
    }

    /// Calls `field` with the cursor on each value of an object, after its key. Keys are
    /// compared as bytes, not checked as UTF-8 (no field name here needs it); a key with
    /// escapes — which no engine writes — is unescaped by serde_json first, and only in
    /// objects whose fields are read.
    fn object(
        &mut self,
        depth: usize,
        read_keys: bool,
        field: impl FnMut(&mut Self, Cow<'a, [u8]>) -> Result<()>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.eat(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        self.fields(read_keys, field)
    }

    /// The fields of an object, with the cursor before one of its keys, to its closing `}`.
    fn fields(
        &mut self,
        read_keys: bool,
        mut field: impl FnMut(&mut Self, Cow<'a, [u8]>) -> Result<()>,
    ) -> Result<()> {
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key"));
            }
            let start = self.pos;
            self.key_start = start;
            let escaped = self.skip_string()?;
            let key = match (read_keys, escaped) {
                (false, _) => Cow::Borrowed(&b""[..]),
                (true, false) => Cow::Borrowed(&self.data[start + 1..self.pos - 1]),
                (true, true) => Cow::Owned(unescape(&self.data[start..self.pos], start)?.into()),
            };
            self.eat(b':', "expected `:`")?;
            field(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// Calls `item` with the cursor on each element of an array.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.eat(b'[', "expected an array")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn choice(&mut self) -> Result<ChunkChoice<'a>> {
        let mut choice = ChunkChoice {
            index: 0,
            delta: Delta::default(),
            finish_reason: None,
            stop_reason: None,
        };
        let mut seen = Seen::default();
        self.object(1, true, |cur, key| {
            match key.as_ref() {
                b"index" => {
                    seen.first(1, "index")?;
                    choice.index = cur.u32()?;
                }
                b"delta" => {
                    seen.first(2, "delta")?;
                    choice.delta = cur.delta()?;
                }
                b"finish_reason" => {
                    seen.first(4, "finish_reason")?;
                    choice.finish_reason = cur.nullable_string()?;
                }
                b"stop_reason" => {
                    seen.first(8, "stop_reason")?;
                    choice.stop_reason = cur.nullable_decode()?;
                }
                _ => cur.skip(2)?,
            }
            Ok(())
        })?;
        Ok(choice)
    }

    fn delta(&mut self) -> Result<Delta<'a>> {
        let mut delta = Delta::default();
        let mut seen = Seen::default();
        self.object(2, true, |cur, key| {
            match key.as_ref() {
                b"content" => {
                    seen.first(1, "content")?;
                    delta.content = cur.nullable_string()?;
                    cur.texts += 1;
                    if let Some(Cow::Borrowed(text)) = &delta.content {
                        cur.text = Some((cur.pos - 1 - text.len(), cur.pos - 1));
                    }
                }
                // Only present in tool-call streams: decoded by serde on its own span.
                b"tool_calls" => {
                    seen.first(2, "tool_calls")?;
                    delta.tool_calls = cur.nullable_decode()?;
                }
                _ => cur.skip(3)?,
            }
            Ok(())
        })?;
        Ok(delta)
    }

    /// `null` (consumed) or nothing consumed.
    fn null(&mut self) -> Result<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    fn nullable_string(&mut self) -> Result<Option<Cow<'a, str>>> {
        if self.null()? {
            return Ok(None);
        }
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string or null"));
        }
        self.string().map(Some)
    }

    /// A value decoded by serde_json from its own bytes (`null` is `None`, as serde's
    /// `Option` has it).
    fn nullable_decode<T: Deserialize<'a>>(&mut self) -> Result<Option<T>> {
        if self.null()? {
            return Ok(None);
        }
        self.ws();
        let start = self.pos;
        self.skip(1)?;
        let span = &self.data[start..self.pos];
        serde_json::from_slice(span)
            .map(Some)
            .map_err(|e| ScanError(format!("{e} (value at byte {start})")))
    }

    /// A string with the cursor on its opening quote: borrowed when it has no escapes,
    /// else decoded by serde_json.
    fn string(&mut self) -> Result<Cow<'a, str>> {
        let start = self.pos;
        let escaped = self.skip_string()?;
        let quoted = &self.data[start..self.pos];
        let inner = &quoted[1..quoted.len() - 1];
        if !escaped {
            return std::str::from_utf8(inner)
                .map(Cow::Borrowed)
                .map_err(|_| ScanError(format!("invalid UTF-8 in the string at byte {start}")));
        }
        unescape(quoted, start).map(Cow::Owned)
    }

    /// Steps over a string with the cursor on its opening quote; whether it has escapes.
    /// Escapes and control characters are checked as serde_json checks them.
    fn skip_string(&mut self) -> Result<bool> {
        self.pos += 1;
        let mut escaped = false;
        loop {
            self.pos += plain_run(self.data.get(self.pos..).unwrap_or_default());
            match self.data.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn escape(&mut self) -> Result<()> {
        match self.data.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
            Some(b'u') => {
                let hex = self.data.get(self.pos + 2..self.pos + 6);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(self.error("invalid \\u escape"));
                }
                self.pos += 6;
            }
            _ => return Err(self.error("invalid escape")),
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if !self.data[self.pos..].starts_with(word) {
            return Err(self.error("invalid literal"));
        }
        self.pos += word.len();
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.data.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A choice index: an unsigned integer that fits in u32 (serde rejects floats,
    /// negatives and overflow for a `u32` field).
    fn u32(&mut self) -> Result<u32> {
        self.ws();
        let start = self.pos;
        let n = self.digits();
        let number_follows = matches!(self.data.get(self.pos), Some(b'.' | b'e' | b'E'));
        let leading_zero = n > 1 && self.data[start] == b'0';
        if n == 0 || number_follows || leading_zero {
            self.pos = start;
            return Err(self.error("expected u32"));
        }
        std::str::from_utf8(&self.data[start..self.pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ScanError(format!("number out of range for u32 at byte {start}")))
    }

    /// Steps over a number, checked against JSON's grammar.
    fn skip_number(&mut self) -> Result<()> {
        if self.data.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int = self.digits();
        if int == 0 || (int > 1 && self.data[int_start] == b'0') {
            return Err(self.error("invalid number"));
        }
        if self.data.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.data.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.data.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(())
    }

    /// Steps over any value at nesting `depth`.
    fn skip(&mut self, depth: usize) -> Result<()> {
        match self.peek() {
            Some(b'"') => self.skip_string().map(drop),
            Some(b'{') => self.object(depth, false, |cur, _| cur.skip(depth + 1)),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("recursion limit exceeded"));
                }
                self.array(|cur| cur.skip(depth + 1))
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            _ => Err(self.error("expected a value")),
        }
    }
}

#[cfg(test)]
#[path = "chunk_scan_tests.rs"]
mod tests;
