//! Message payloads (JSON). The schemas in `docs/events.md` are the serde forms of these.

use serde::{Deserialize, Serialize};
use switchyard_kv::{BlockHash, KvEvent};

/// `switchyard.kv.<instance>`: a batch of KV events from one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEventsMessage {
    pub instance: String,
    /// Random per publisher start: a new epoch means a restarted worker, whose `seq` began
    /// again at 1, so the subscriber resyncs instead of ignoring "old" numbers.
    pub epoch: u64,
    /// 1, 2, 3, … per epoch, one per message; a skipped number is a lost message.
    pub seq: u64,
    pub events: Vec<KvEvent>,
}

/// How loaded an instance is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSnapshot {
    /// Sequences being decoded (in flight on the GPU).
    pub running: u32,
    /// Requests queued, not yet scheduled.
    pub waiting: u32,
    /// Fraction of KV blocks in use, 0.0–1.0.
    pub kv_usage: f32,
}

/// `switchyard.load.<instance>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMessage {
    pub instance: String,
    #[serde(flatten)]
    pub load: LoadSnapshot,
}

/// One reply to a `switchyard.kv.dump.<instance>` request. Large caches are split into
/// `parts` messages (each under the server's max payload), all with the same epoch and seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpPart {
    pub instance: String,
    pub epoch: u64,
    /// The last seq whose events the block set reflects.
    pub seq: u64,
    /// 0-based part number.
    pub part: u32,
    pub parts: u32,
    pub blocks: Vec<BlockHash>,
}

/// `switchyard.replica.<frontend>`: one frontend's in-flight requests per instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMessage {
    pub frontend: String,
    /// Forget these counts if no newer message arrives within this many milliseconds.
    pub ttl_ms: u64,
    /// `[instance, in_flight]` pairs; instances absent have zero.
    pub in_flight: Vec<(String, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_message_schema_is_stable() {
        let m = KvEventsMessage {
            instance: "w1".into(),
            epoch: 7,
            seq: 3,
            events: vec![
                KvEvent::Stored {
                    parent: Some(1),
                    blocks: vec![2, 3],
                },
                KvEvent::Removed { blocks: vec![9] },
                KvEvent::Cleared,
            ],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"instance":"w1","epoch":7,"seq":3,"events":[{"type":"stored","parent":1,"blocks":[2,3]},{"type":"removed","blocks":[9]},{"type":"cleared"}]}"#
        );
        let load = LoadMessage {
            instance: "w1".into(),
            load: LoadSnapshot {
                running: 2,
                waiting: 1,
                kv_usage: 0.5,
            },
        };
        assert_eq!(
            serde_json::to_string(&load).unwrap(),
            r#"{"instance":"w1","running":2,"waiting":1,"kv_usage":0.5}"#
        );
    }
}
