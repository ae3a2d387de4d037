//! The SSE re-framer fed the same byte stream in arbitrary chunk splits.
//!
//! Invariants: no panic; the events do not depend on how the bytes were split; an event's
//! wire form (the bytes it arrived in, when the framer kept them) is its canonical encoding. The size limit
//! (small here, so it is exercised) may trip earlier when a long line arrives in pieces (the
//! framer bounds what it buffers, not just what it parses), so when either run hit it, the
//! events before the error must be a prefix of the other run's events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_protocol::sse::{encode_data, Framer};

const LIMIT: usize = 256;

/// Feeds `stream` in pieces whose lengths come from `splits`; returns the events, in order,
/// and whether the framer reported an error.
fn frame(stream: &[u8], splits: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut framer = Framer::new(LIMIT);
    let mut events = Vec::new();
    let mut rest = stream;
    let mut sizes = splits.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().map_or(rest.len(), |&s| usize::from(s).max(1)).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        framer.push(chunk);
        loop {
            match framer.next_event() {
                Ok(Some(event)) => {
                    assert_eq!(event.encoded(), encode_data(&event.data), "kept wire bytes differ");
                    events.push(event.data.to_vec());
                }
                Ok(None) => break,
                Err(_) => return (events, true),
            }
        }
    }
    (events, false)
}

fuzz_target!(|data: &[u8]| {
    // First byte: how many split sizes follow; then the sizes; the rest is the stream.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (splits, stream) = rest.split_at(n);
    let whole = frame(stream, &[]);
    let split = frame(stream, splits);
    let bytewise = frame(stream, &[1]);
    for other in [&split, &bytewise] {
        if !whole.1 && !other.1 {
            assert_eq!(whole.0, other.0, "events depend on the chunk split");
        } else {
            let n = whole.0.len().min(other.0.len());
            assert_eq!(whole.0[..n], other.0[..n], "events before the error differ");
        }
    }
    for event in &whole.0 {
        assert!(event.len() <= LIMIT, "an event over the limit was returned");
    }
});
