//! Cheap "does this JSON payload mention key X" probes, run on every streamed event before
//! anything is decoded.
//!
//! `memchr::memmem::find` builds a searcher on every call, which for these short needles
//! costs more than the search itself (callgrind: ~13 k instructions per 16-token stream,
//! about 6 % of the frontend's work per streamed request). Each needle here is compiled
//! once per process instead.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// A JSON object key, quoted as it appears on the wire, with its searcher built on first use.
pub struct JsonKey {
    finder: LazyLock<Finder<'static>>,
}

impl JsonKey {
    const fn new(init: fn() -> Finder<'static>) -> Self {
        Self {
            finder: LazyLock::new(init),
        }
    }

    /// Whether `data` contains the quoted key anywhere (a pre-check: the caller decodes to be sure).
    pub fn in_bytes(&self, data: &[u8]) -> bool {
        self.finder.find(data).is_some()
    }

    /// The raw bytes of the first string value after the key (`"key":"…"`, no whitespace, as
    /// engines write JSON), up to its closing quote; `None` when the key is absent or its value
    /// is not a string. Escapes are not decoded: callers only ask whether it is empty.
    pub fn string_value_at<'a>(&self, data: &'a [u8]) -> Option<&'a [u8]> {
        let at = self.finder.find(data)? + self.finder.needle().len();
        let rest = data.get(at..)?.strip_prefix(b":\"")?;
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                b'\\' => i += 2,
                b'"' => return Some(&rest[..i]),
                _ => i += 1,
            }
        }
        None
    }
}

/// `"error"`: in-band error events.
pub static ERROR: JsonKey = JsonKey::new(|| Finder::new(b"\"error\""));
/// `"usage"`: usage chunks and fields.
pub static USAGE: JsonKey = JsonKey::new(|| Finder::new(b"\"usage\""));
/// `"stream_options"`: a request that already says whether it wants usage.
pub static STREAM_OPTIONS: JsonKey = JsonKey::new(|| Finder::new(b"\"stream_options\""));

/// `"content"`, `"text"`, `"reasoning_content"`, `"arguments"`: where a streamed chunk carries
/// generated text.
pub static CONTENT: JsonKey = JsonKey::new(|| Finder::new(b"\"content\""));
pub static TEXT: JsonKey = JsonKey::new(|| Finder::new(b"\"text\""));
pub static REASONING_CONTENT: JsonKey = JsonKey::new(|| Finder::new(b"\"reasoning_content\""));
pub static ARGUMENTS: JsonKey = JsonKey::new(|| Finder::new(b"\"arguments\""));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_only_when_quoted() {
        assert!(ERROR.in_bytes(br#"{"error":{"message":"x"}}"#));
        assert!(!ERROR.in_bytes(br#"{"content":"an error occurred"}"#));
        assert!(USAGE.in_bytes(br#"{"choices":[],"usage":{"prompt_tokens":1}}"#));
        assert!(!USAGE.in_bytes(b""));
        assert!(STREAM_OPTIONS.in_bytes(br#"{"stream_options":null}"#));
    }

    #[test]
    fn string_values_are_read_up_to_their_closing_quote() {
        let role = br#"{"delta":{"role":"assistant","content":""}}"#;
        assert_eq!(CONTENT.string_value_at(role), Some(&b""[..]));
        let text = br#"{"delta":{"content":"say \"hi\""},"x":"y"}"#;
        assert_eq!(CONTENT.string_value_at(text), Some(&br#"say \"hi\""#[..]));
        assert_eq!(
            CONTENT.string_value_at(br#"{"delta":{"content":null}}"#),
            None
        );
        assert_eq!(CONTENT.string_value_at(br#"{"delta":{}}"#), None);
        assert_eq!(
            CONTENT.string_value_at(br#"{"content":"unterminated"#),
            None
        );
    }
}
