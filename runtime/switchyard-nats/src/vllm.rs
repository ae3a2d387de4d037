//! Decoding vLLM's KV-event stream (`vllm/distributed/kv_events.py`).
//!
//! Each ZMQ message has three frames: `[topic, seq (8-byte big-endian), payload]`. The
//! payload is a msgpack `KVEventBatch`. vLLM encodes its msgspec structs as *arrays* in the
//! releases that introduced KV events (`array_like=True`):
//!
//! ```text
//! batch  = [ts, [event, ...], data_parallel_rank?]
//! event  = ["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium?, ...]
//!        | ["BlockRemoved", block_hashes, medium?, ...]
//!        | ["AllBlocksCleared"]
//! ```
//!
//! and later versions switched some structs to *maps* (`{"ts":…, "events":[…]}`, events as
//! `{"type":"BlockStored", "block_hashes":…}`). Both are accepted. Block hashes are integers
//! in older versions and bytes (`ExternalBlockHash`) in newer ones; both are kept opaque.

use rmpv::Value;

use crate::{Error, Result};

/// vLLM's own block hash, opaque to us: only used to translate removals and parents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VllmHash {
    Int(i128),
    Bytes(Vec<u8>),
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VllmEvent {
    BlockStored {
        block_hashes: Vec<VllmHash>,
        parent_block_hash: Option<VllmHash>,
        token_ids: Vec<u32>,
        block_size: usize,
        lora_id: Option<i64>,
    },
    BlockRemoved {
        block_hashes: Vec<VllmHash>,
    },
    AllBlocksCleared,
}

/// A decoded ZMQ message.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmBatch {
    pub seq: u64,
    pub ts: f64,
    pub events: Vec<VllmEvent>,
}

/// Decodes the frames of one ZMQ message (`[topic, seq, payload]`; a missing topic frame is
/// tolerated: `[seq, payload]`).
pub fn decode_frames(frames: &[&[u8]]) -> Result<VllmBatch> {
    let (seq, payload) = match frames {
        [_, seq, payload] | [seq, payload] => (*seq, *payload),
        _ => return Err(bad(format!("expected 3 frames, got {}", frames.len()))),
    };
    let seq: [u8; 8] = seq
        .try_into()
        .map_err(|_| bad(format!("seq frame has {} bytes, not 8", seq.len())))?;
    let mut batch = decode_batch(payload)?;
    batch.seq = u64::from_be_bytes(seq);
    Ok(batch)
}

/// Decodes a msgpack `KVEventBatch` (seq left 0).
pub fn decode_batch(payload: &[u8]) -> Result<VllmBatch> {
    let value =
        rmpv::decode::read_value(&mut &payload[..]).map_err(|e| bad(format!("msgpack: {e}")))?;
    let (ts, events) = match &value {
        Value::Array(items) => (items.first(), items.get(1)),
        Value::Map(_) => (field(&value, "ts"), field(&value, "events")),
        other => return Err(bad(format!("batch is not an array or map: {other}"))),
    };
    let ts = ts.and_then(Value::as_f64).unwrap_or(0.0);
    let events = events
        .and_then(Value::as_array)
        .ok_or_else(|| bad("batch has no event list".into()))?
        .iter()
        .filter_map(|e| match decode_event(e) {
            Ok(ev) => ev,
            Err(err) => {
                tracing::debug!(error = %err, "skipping undecodable vLLM event");
                None
            }
        })
        .collect();
    Ok(VllmBatch { seq: 0, ts, events })
}

/// One event; `Ok(None)` for event types we don't use.
fn decode_event<'a>(v: &'a Value) -> Result<Option<VllmEvent>> {
    // Positional fields after the tag, or named fields of a map.
    type Getter<'a> = Box<dyn Fn(usize, &str) -> Option<&'a Value> + 'a>;
    let (tag, get): (&str, Getter<'a>) = match v {
        Value::Array(items) => {
            let tag = items
                .first()
                .and_then(Value::as_str)
                .ok_or_else(|| bad("event without a tag".into()))?;
            (tag, Box::new(move |i, _| items.get(i + 1)))
        }
        Value::Map(_) => {
            let tag = field(v, "type")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("event without a type".into()))?;
            (tag, Box::new(move |_, name| field(v, name)))
        }
        other => return Err(bad(format!("event is not an array or map: {other}"))),
    };
    Ok(Some(match tag {
        "BlockStored" => VllmEvent::BlockStored {
            block_hashes: hashes(get(0, "block_hashes"))?,
            parent_block_hash: get(1, "parent_block_hash").and_then(hash),
            token_ids: tokens(get(2, "token_ids"))?,
            block_size: get(3, "block_size")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("BlockStored without block_size".into()))?
                as usize,
            lora_id: get(4, "lora_id").and_then(Value::as_i64),
        },
        "BlockRemoved" => VllmEvent::BlockRemoved {
            block_hashes: hashes(get(0, "block_hashes"))?,
        },
        "AllBlocksCleared" => VllmEvent::AllBlocksCleared,
        _ => return Ok(None),
    }))
}

fn field<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

fn hash(v: &Value) -> Option<VllmHash> {
    match v {
        Value::Integer(i) => i
            .as_i64()
            .map(i128::from)
            .or_else(|| i.as_u64().map(i128::from))
            .map(VllmHash::Int),
        Value::Binary(b) => Some(VllmHash::Bytes(b.clone())),
        _ => None,
    }
}

fn hashes(v: Option<&Value>) -> Result<Vec<VllmHash>> {
    v.and_then(Value::as_array)
        .ok_or_else(|| bad("missing block_hashes".into()))?
        .iter()
        .map(|h| hash(h).ok_or_else(|| bad(format!("bad block hash {h}"))))
        .collect()
}

fn tokens(v: Option<&Value>) -> Result<Vec<u32>> {
    v.and_then(Value::as_array)
        .ok_or_else(|| bad("missing token_ids".into()))?
        .iter()
        .map(|t| {
            t.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| bad(format!("bad token id {t}")))
        })
        .collect()
}

fn bad(msg: String) -> Error {
    Error::Vllm(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn decodes_array_like_batches() {
        let batch = Value::Array(vec![
            Value::F64(1.5),
            Value::Array(vec![
                Value::Array(vec![
                    s("BlockStored"),
                    Value::Array(vec![Value::from(11u64), Value::from(u64::MAX)]),
                    Value::Nil,
                    Value::Array((1..=4u32).map(Value::from).collect()),
                    Value::from(2u64),
                    Value::Nil,
                    s("GPU"),
                ]),
                Value::Array(vec![
                    s("BlockRemoved"),
                    Value::Array(vec![Value::from(11u64)]),
                ]),
                Value::Array(vec![s("AllBlocksCleared")]),
                Value::Array(vec![s("SomethingNew"), Value::Nil]),
            ]),
            Value::from(0u64),
        ]);
        let seq = 7u64.to_be_bytes();
        let payload = encode(&batch);
        let b = decode_frames(&[b"kv", &seq, &payload]).unwrap();
        assert_eq!(b.seq, 7);
        assert_eq!(b.ts, 1.5);
        assert_eq!(
            b.events,
            vec![
                VllmEvent::BlockStored {
                    block_hashes: vec![VllmHash::Int(11), VllmHash::Int(u64::MAX as i128)],
                    parent_block_hash: None,
                    token_ids: vec![1, 2, 3, 4],
                    block_size: 2,
                    lora_id: None,
                },
                VllmEvent::BlockRemoved {
                    block_hashes: vec![VllmHash::Int(11)]
                },
                VllmEvent::AllBlocksCleared,
            ]
        );
    }

    #[test]
    fn decodes_map_batches_with_byte_hashes() {
        let ev = Value::Map(vec![
            (s("type"), s("BlockStored")),
            (
                s("block_hashes"),
                Value::Array(vec![Value::Binary(vec![1, 2])]),
            ),
            (s("parent_block_hash"), Value::Binary(vec![9])),
            (s("token_ids"), Value::Array(vec![Value::from(5u32)])),
            (s("block_size"), Value::from(1u64)),
        ]);
        let batch = Value::Map(vec![
            (s("ts"), Value::F64(2.0)),
            (s("events"), Value::Array(vec![ev])),
        ]);
        let b = decode_batch(&encode(&batch)).unwrap();
        assert_eq!(
            b.events,
            vec![VllmEvent::BlockStored {
                block_hashes: vec![VllmHash::Bytes(vec![1, 2])],
                parent_block_hash: Some(VllmHash::Bytes(vec![9])),
                token_ids: vec![5],
                block_size: 1,
                lora_id: None,
            }]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_frames(&[b"a"]).is_err());
        assert!(decode_frames(&[b"t", b"short", b""]).is_err());
        assert!(decode_batch(&[0xc1]).is_err());
        assert!(decode_batch(&encode(&Value::from(3u64))).is_err());
    }
}
