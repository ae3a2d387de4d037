//! Checks on inbound event messages: anyone who can publish on the bus can send anything,
//! so a message is decoded only when its size allows, and applied only when its ids are
//! bounded, its subject matches the id it claims and its numbers make sense. A message that
//! fails is dropped and counted by [`Reject`] reason
//! (`switchyard_event_messages_rejected_total`); nothing else is affected.

use std::sync::atomic::{AtomicU64, Ordering};

use switchyard_kv::KvEvent;

use crate::subjects;
use crate::wire::{KvEventsMessage, LoadMessage};

/// Longest instance id accepted on the bus, bytes (as discovery's limit).
pub const MAX_ID_BYTES: usize = 600;
/// Most block hashes one KV event message may carry (a prompt of 64k blocks is ~1M tokens).
pub const MAX_BLOCKS_PER_MESSAGE: usize = 65_536;
/// Largest message payload decoded, bytes. nats-server's own default `max_payload` is 1 MiB;
/// this holds even against a server configured higher.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Why a message was dropped: a fixed set, so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Over [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Not JSON of the message's schema.
    Parse,
    /// An empty, overlong or control-character instance id.
    Instance,
    /// The subject is not the one for the instance the payload names.
    Subject,
    /// A number out of range (`kv_usage` outside 0–1, too many blocks).
    Value,
}

impl Reject {
    pub const ALL: [Reject; 5] = [
        Reject::TooLarge,
        Reject::Parse,
        Reject::Instance,
        Reject::Subject,
        Reject::Value,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::TooLarge => "too_large",
            Reject::Parse => "parse",
            Reject::Instance => "instance",
            Reject::Subject => "subject",
            Reject::Value => "value",
        }
    }
}

/// Rejections by reason.
#[derive(Debug, Default)]
pub struct RejectCounters([AtomicU64; Reject::ALL.len()]);

impl RejectCounters {
    pub fn count(&self, reason: Reject) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `(label, count)` for every reason, in [`Reject::ALL`] order.
    pub fn snapshot(&self) -> [(&'static str, u64); Reject::ALL.len()] {
        Reject::ALL.map(|r| (r.as_str(), self.0[r as usize].load(Ordering::Relaxed)))
    }
}

/// Decodes and checks a KV event message received on `subject`.
pub fn kv_message(subject: &str, payload: &[u8]) -> Result<KvEventsMessage, Reject> {
    let m: KvEventsMessage = decode(payload)?;
    check_instance(&m.instance, subject, subjects::KV)?;
    let blocks: usize = m
        .events
        .iter()
        .map(|e| match e {
            KvEvent::Stored { blocks, .. } | KvEvent::Removed { blocks } => blocks.len(),
            KvEvent::Cleared => 0,
        })
        .fold(0, usize::saturating_add);
    if blocks > MAX_BLOCKS_PER_MESSAGE {
        return Err(Reject::Value);
    }
    Ok(m)
}

/// Decodes and checks a load snapshot received on `subject`.
pub fn load_message(subject: &str, payload: &[u8]) -> Result<LoadMessage, Reject> {
    let m: LoadMessage = decode(payload)?;
    check_instance(&m.instance, subject, subjects::LOAD)?;
    // JSON has no NaN, but a huge literal decodes to an infinite f32.
    if !(0.0..=1.0).contains(&m.load.kv_usage) {
        return Err(Reject::Value);
    }
    Ok(m)
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Reject> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(Reject::TooLarge);
    }
    serde_json::from_slice(payload).map_err(|_| Reject::Parse)
}

fn check_instance(id: &str, subject: &str, prefix: &str) -> Result<(), Reject> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(Reject::Instance);
    }
    // Publishers send on their own id's subject; with per-worker NATS permissions this is
    // what stops one worker speaking for another.
    let token = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'));
    if token != Some(subjects::token(id).as_str()) {
        return Err(Reject::Subject);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(subject: &str, json: &str) -> Result<KvEventsMessage, Reject> {
        kv_message(subject, json.as_bytes())
    }

    fn load(subject: &str, json: &str) -> Result<LoadMessage, Reject> {
        load_message(subject, json.as_bytes())
    }

    #[test]
    fn good_messages_pass() {
        let m = kv(
            "switchyard.kv.10%2E0%2E0%2E7:8000",
            r#"{"instance":"10.0.0.7:8000","epoch":1,"seq":1,"events":[{"type":"stored","parent":null,"blocks":[1,2]}]}"#,
        )
        .unwrap();
        assert_eq!(m.seq, 1);
        let l = load(
            "switchyard.load.w1",
            r#"{"instance":"w1","running":1,"waiting":0,"kv_usage":0.5}"#,
        )
        .unwrap();
        assert_eq!(l.load.running, 1);
    }

    #[test]
    fn bad_messages_are_rejected_by_reason() {
        assert_eq!(kv("switchyard.kv.w1", "{").unwrap_err(), Reject::Parse);
        assert_eq!(
            kv(
                "switchyard.kv.w2",
                r#"{"instance":"w1","epoch":1,"seq":1,"events":[]}"#
            )
            .unwrap_err(),
            Reject::Subject
        );
        assert_eq!(
            kv(
                "switchyard.kv.%00",
                r#"{"instance":"","epoch":1,"seq":1,"events":[]}"#
            )
            .unwrap_err(),
            Reject::Instance
        );
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            kv_message("switchyard.kv.w1", &big).unwrap_err(),
            Reject::TooLarge
        );
        let many: Vec<String> = (0..=MAX_BLOCKS_PER_MESSAGE)
            .map(|i| i.to_string())
            .collect();
        let json = format!(
            r#"{{"instance":"w1","epoch":1,"seq":1,"events":[{{"type":"removed","blocks":[{}]}}]}}"#,
            many.join(",")
        );
        assert_eq!(kv("switchyard.kv.w1", &json).unwrap_err(), Reject::Value);
        for usage in ["1e39", "-0.5", "1.5"] {
            let json = format!(r#"{{"instance":"w1","running":1,"waiting":0,"kv_usage":{usage}}}"#);
            assert_eq!(
                load("switchyard.load.w1", &json).unwrap_err(),
                Reject::Value,
                "{usage}"
            );
        }
        assert_eq!(
            load(
                "switchyard.load.w1",
                r#"{"instance":"w1","running":-1,"waiting":0,"kv_usage":0}"#
            )
            .unwrap_err(),
            Reject::Parse
        );
    }

    #[test]
    fn counters_count_by_reason() {
        let c = RejectCounters::default();
        c.count(Reject::Subject);
        c.count(Reject::Subject);
        assert!(c.snapshot().contains(&("subject", 2)));
        assert!(c.snapshot().contains(&("parse", 0)));
    }
}
