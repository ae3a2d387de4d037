//! Messages from the event bus, as the subscriber receives them: a subject and a payload,
//! both chosen by whoever can publish. First byte: which decoder (KV events, load snapshot,
//! vLLM's msgpack batch from ZMQ); second byte: the subject's length; then the subject; the
//! rest is the payload.
//!
//! Invariants: no panic; an accepted message names a bounded instance id whose subject is the
//! one it arrived on, carries at most `MAX_BLOCKS_PER_MESSAGE` blocks and a KV usage in 0–1;
//! applying accepted KV events to an index capped per instance never exceeds the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_kv::{KvEvent, SharedKvIndex};
use switchyard_nats::inbound::{kv_message, load_message, MAX_BLOCKS_PER_MESSAGE, MAX_ID_BYTES};
use switchyard_nats::{subjects, vllm};

const CAP: usize = 64;

fuzz_target!(|data: &[u8]| {
    let [kind, len, rest @ ..] = data else {
        return;
    };
    let len = usize::from(*len).min(rest.len());
    let (subject, payload) = rest.split_at(len);
    let subject = String::from_utf8_lossy(subject);
    match kind % 3 {
        0 => {
            if let Ok(m) = kv_message(&subject, payload) {
                assert!(!m.instance.is_empty() && m.instance.len() <= MAX_ID_BYTES);
                assert_eq!(subject, subjects::kv(&m.instance));
                let blocks: usize = m
                    .events
                    .iter()
                    .map(|e| match e {
                        KvEvent::Stored { blocks, .. } | KvEvent::Removed { blocks } => {
                            blocks.len()
                        }
                        KvEvent::Cleared => 0,
                    })
                    .sum();
                assert!(blocks <= MAX_BLOCKS_PER_MESSAGE);
                let index = SharedKvIndex::with_max_blocks_per_instance(CAP);
                for event in &m.events {
                    index.apply(&m.instance, event);
                }
                assert!(
                    index.instance_blocks(&m.instance) <= CAP,
                    "per-instance cap exceeded"
                );
            }
        }
        1 => {
            if let Ok(m) = load_message(&subject, payload) {
                assert!(!m.instance.is_empty() && m.instance.len() <= MAX_ID_BYTES);
                assert_eq!(subject, subjects::load(&m.instance));
                assert!((0.0..=1.0).contains(&m.load.kv_usage));
            }
        }
        _ => {
            let _ = vllm::decode_batch(payload);
        }
    }
});
