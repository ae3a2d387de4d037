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
