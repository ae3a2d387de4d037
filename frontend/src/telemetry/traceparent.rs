//! The W3C Trace Context headers (Level 1): `traceparent` read strictly from a client, written
//! as version `00` to workers, and `tracestate` carried beside it.
//!
//! An invalid header is not an error: the spec has the receiver ignore it (and the
//! `tracestate` that came with it) as if the client had sent none.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The length of a version-00 value: `vv-<32 hex>-<16 hex>-ff`.
const LEN: usize = 55;
/// The `tracestate` this frontend passes on, at most: the size the spec asks every
/// participant to propagate. Longer lists lose whole members from the end.
const MAX_TRACESTATE: usize = 512;

/// A parsed `traceparent`: the caller's trace, its span (our parent) and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// The only flag version 00 defines: the caller may have recorded its span.
    pub const SAMPLED: u8 = 0x01;

    /// The client's `traceparent`, when exactly one valid header was sent. Two or more
    /// headers are ambiguous and ignored, as the spec's test suite expects.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(value.as_bytes())
    }

    /// Parses one header value: version 00 exactly 55 characters; a later version (not
    /// `ff`) may append fields after a `-`, and is read as version 00 would be. Hex must be
    /// lowercase, and neither id may be all zeros.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let version = hex_byte(value.get(0..2)?)?;
        let tail_ok = match (version, value.len()) {
            (0xff, _) => false,
            (0, len) => len == LEN,
            (_, len) => len == LEN || value.get(LEN) == Some(&b'-'),
        };
        let dashes = [2, 35, 52].iter().all(|&i| value.get(i) == Some(&b'-'));
        if !tail_ok || !dashes {
            return None;
        }
        let trace_id: [u8; 16] = hex_array(value.get(3..35)?)?;
        let parent_id: [u8; 8] = hex_array(value.get(36..52)?)?;
        let flags = hex_byte(value.get(53..55)?)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the caller set the sampled flag.
    pub fn sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The version-00 header value naming `span_id` as the parent. Only the flag version 00
    /// defines is kept.
    pub fn header_value(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> HeaderValue {
        let mut out = [0u8; LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            for (slot, &b) in out.iter_mut().skip(at).zip(bytes) {
                *slot = b;
            }
            at += bytes.len();
        };
        put(b"00-");
        put(&hex(trace_id));
        put(b"-");
        put(&hex(span_id));
        put(if sampled { b"-01" } else { b"-00" });
        // Only ASCII hex digits and dashes: always a valid header value.
        HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The `tracestate` to pass on with a valid `traceparent`: the client's headers joined with
/// commas (the spec's rule for several), members trimmed to [`MAX_TRACESTATE`] bytes from the
/// end. `None` when there is none, or it holds characters a list member cannot.
pub fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut joined = Vec::new();
    for value in headers.get_all(TRACESTATE) {
        let bytes = value.as_bytes();
        if !bytes.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
            return None;
        }
        for member in bytes.split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            let extra = member.len() + usize::from(!joined.is_empty());
            if joined.len() + extra > MAX_TRACESTATE {
                break;
            }
            if !joined.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(member);
        }
    }
    if joined.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// Lowercase hex, as the spec requires on the wire.
pub fn hex<const N: usize>(bytes: &[u8; N]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(N * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    out
}

fn hex_array<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if digits.len() != N * 2 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *slot = hex_byte(pair)?;
    }
    Some(out)
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match pair {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(s: &str) -> Option<TraceParent> {
        TraceParent::parse(s.as_bytes())
    }

    #[test]
    fn a_valid_version_00_value_is_read() {
        let tp = parse(VALID).unwrap();
        assert_eq!(hex(&tp.trace_id), b"4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&tp.parent_id), b"00f067aa0ba902b7");
        assert!(tp.sampled());
        let unsampled = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled());
        // Flags this version does not define are read, not refused.
        assert_eq!(parse(&VALID.replace("-01", "-09")).unwrap().flags, 9);
    }

    #[test]
    fn a_later_version_is_read_as_00_and_may_carry_more_fields() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(
            parse(future).map(|t| t.trace_id),
            parse(VALID).map(|t| t.trace_id)
        );
        assert!(parse(&future.replace("-01-what", "-01what")).is_none());
        assert!(parse(&VALID.replacen("00", "01", 1)).is_some());
    }

    #[test]
    fn each_invalid_form_is_ignored() {
        let cases = [
            ("version ff", VALID.replacen("00", "ff", 1)),
            ("uppercase version", VALID.replacen("00", "0A", 1)),
            ("non-hex version", VALID.replacen("00", "0g", 1)),
            ("00 with a tail", format!("{VALID}-extra")),
            ("00 with a trailing space", format!("{VALID} ")),
            ("too short", VALID[..54].to_owned()),
            ("empty", String::new()),
            (
                "all-zero trace id",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
            ),
            (
                "all-zero parent id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),
            ),
            ("uppercase trace id", VALID.replace("4bf92f", "4BF92F")),
            ("uppercase parent id", VALID.replace("00f067aa", "00F067AA")),
            ("uppercase flags", VALID.replace("-01", "-0A")),
            ("non-hex flags", VALID.replace("-01", "-0x")),
            ("short trace id", VALID.replace("4bf92f", "4bf92")),
            (
                "long parent id",
                VALID.replace("00f067aa0ba902b7", "00f067aa0ba902b7a"),
            ),
            ("wrong separator", VALID.replace('-', "_")),
            ("missing flags", VALID[..52].to_owned()),
        ];
        for (what, value) in cases {
            assert_eq!(parse(&value), None, "{what}: {value}");
        }
    }

    #[test]
    fn only_a_single_header_counts() {
        let mut headers = HeaderMap::new();
        assert_eq!(TraceParent::from_headers(&headers), None);
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(TraceParent::from_headers(&headers).is_some());
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceParent::from_headers(&headers), None, "duplicated");
    }

    #[test]
    fn the_value_for_workers_is_version_00_and_round_trips() {
        let tp = parse(VALID).unwrap();
        let value = TraceParent::header_value(&tp.trace_id, &[0xab; 8], true);
        assert_eq!(
            value.to_str().unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01"
        );
        let back = TraceParent::parse(value.as_bytes()).unwrap();
        assert_eq!((back.trace_id, back.parent_id), (tp.trace_id, [0xab; 8]));
        let unsampled = TraceParent::header_value(&tp.trace_id, &[1; 8], false);
        assert!(unsampled.to_str().unwrap().ends_with("-00"));
    }

    #[test]
    fn tracestate_headers_are_joined_and_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(tracestate(&headers), None);
        headers.append(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        headers.append(
            TRACESTATE,
            HeaderValue::from_static(" rojo=00f067aa0ba902b7 ,"),
        );
        assert_eq!(
            tracestate(&headers).unwrap(),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        );
        let mut long = HeaderMap::new();
        let member = format!("k={}", "v".repeat(200));
        let list = [member.as_str(); 4].join(",");
        long.insert(TRACESTATE, HeaderValue::from_str(&list).unwrap());
        let kept = tracestate(&long).unwrap();
        assert!(kept.len() <= MAX_TRACESTATE);
        assert_eq!(
            kept.as_bytes().split(|&b| b == b',').count(),
            2,
            "whole members"
        );
        let mut bad = HeaderMap::new();
        bad.insert(TRACESTATE, HeaderValue::from_bytes(b"k=\xe9").unwrap());
        assert_eq!(tracestate(&bad), None);
    }
}
