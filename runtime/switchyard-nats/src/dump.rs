//! The dump protocol: a subscriber that lost track of an instance asks for its full block set.
//!
//! Request: an empty message on `switchyard.kv.dump.<instance>` with a reply inbox.
//! Reply: one or more [`DumpPart`]s on that inbox. A reply may be split because a real cache
//! (100k+ blocks) does not fit one NATS message; core NATS `request()` takes only the first
//! reply, so the requester subscribes to its own inbox and collects every part.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::Subject;
use futures_util::StreamExt;
use switchyard_kv::BlockHash;

use crate::wire::DumpPart;
use crate::{subjects, Error, Result};

/// A complete dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub epoch: u64,
    pub seq: u64,
    pub blocks: Vec<BlockHash>,
}

/// JSON bytes per block hash, worst case (`u64::MAX` has 20 digits, plus a comma).
const BYTES_PER_BLOCK: usize = 21;

/// More parts than this is not a cache (≈ 100M blocks at the default payload limit): the
/// answer is refused rather than collected.
pub const MAX_PARTS: u32 = 4096;

/// Checks one reply part from a peer before it is collected.
fn check_part(part: &DumpPart) -> std::result::Result<(), String> {
    if part.parts == 0 || part.parts > MAX_PARTS {
        return Err(format!("parts = {} (1..={MAX_PARTS})", part.parts));
    }
    if part.part >= part.parts {
        return Err(format!("part {} of {}", part.part, part.parts));
    }
    // Sequence numbers continue at `seq + 1`; there is none after `u64::MAX`, so a dump
    // claiming it could never be followed (every later message would look already applied).
    if part.seq == u64::MAX {
        return Err("seq = u64::MAX leaves no next sequence number".into());
    }
    Ok(())
}

/// Sends `blocks` to `reply` in as many parts as the server's payload limit requires.
pub async fn answer(
    client: &async_nats::Client,
    reply: Subject,
    instance: &str,
    epoch: u64,
    seq: u64,
    blocks: &[BlockHash],
) -> Result<()> {
    // Half the limit leaves room for the envelope and any future fields.
    let per_part = (client.max_payload().max(4096) / 2 / BYTES_PER_BLOCK).max(1);
    let chunks: Vec<&[BlockHash]> = if blocks.is_empty() {
        vec![&[]]
    } else {
        blocks.chunks(per_part).collect()
    };
    let parts = chunks.len() as u32;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let part = DumpPart {
            instance: instance.to_string(),
            epoch,
            seq,
            part: i as u32,
            parts,
            blocks: chunk.to_vec(),
        };
        client
            .publish(reply.clone(), serde_json::to_vec(&part)?.into())
            .await?;
    }
    Ok(())
}

/// Asks `instance` for its block set and waits up to `timeout` for every part.
pub async fn request(
    client: &async_nats::Client,
    instance: &str,
    timeout: Duration,
) -> Result<Dump> {
    let fail = |reason: String| Error::Dump {
        instance: instance.to_string(),
        reason,
    };
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subjects::kv_dump(instance), inbox, "".into())
        .await?;
    let collect = async {
        let mut parts: BTreeMap<u32, DumpPart> = BTreeMap::new();
        let mut expected: Option<(u64, u64, u32)> = None;
        while let Some(msg) = replies.next().await {
            let part: DumpPart = serde_json::from_slice(&msg.payload)?;
            check_part(&part).map_err(|reason| fail(format!("bad reply: {reason}")))?;
            let key = (part.epoch, part.seq, part.parts);
            match expected {
                None => expected = Some(key),
                // Parts of an older answer (a repeated request): start over with the newer.
                Some(k) if k != key => {
                    parts.clear();
                    expected = Some(key);
                }
                Some(_) => {}
            }
            parts.insert(part.part, part);
            if parts.len() as u32 >= key.2 {
                let blocks = parts.into_values().flat_map(|p| p.blocks).collect();
                return Ok(Dump {
                    epoch: key.0,
                    seq: key.1,
                    blocks,
                });
            }
        }
        Err(fail("reply subscription closed".into()))
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!("no complete reply within {timeout:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seq: u64, part: u32, parts: u32) -> DumpPart {
        DumpPart {
            instance: "w".into(),
            epoch: 1,
            seq,
            part,
            parts,
            blocks: vec![1],
        }
    }

    #[test]
    fn extreme_parts_and_sequence_numbers_are_refused() {
        assert!(check_part(&part(0, 0, 1)).is_ok());
        assert!(check_part(&part(u64::MAX - 1, MAX_PARTS - 1, MAX_PARTS)).is_ok());
        assert!(check_part(&part(u64::MAX, 0, 1)).is_err());
        assert!(check_part(&part(1, 0, 0)).is_err());
        assert!(check_part(&part(1, 1, 1)).is_err());
        assert!(check_part(&part(1, u32::MAX, u32::MAX)).is_err());
        assert!(check_part(&part(1, 0, MAX_PARTS + 1)).is_err());
    }
}
