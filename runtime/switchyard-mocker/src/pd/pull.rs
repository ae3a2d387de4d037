//! The decode side: pull the KV a request names from its prefill instance, pay the transfer
//! time, and leave the prompt warm in this mocker's cache.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::Uri;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use switchyard_kv::BlockHash;

use super::Source;
use crate::state::Shared;

/// Largest `/kv/pull` answer read.
const ANSWER_LIMIT: usize = 64 * 1024;

#[derive(Deserialize)]
struct Pulled {
    blocks: u64,
}

/// Pulls what `source` names; `hashes` are the prompt's blocks, stored here on success. The
/// error says why the pull failed (for the load-failure policy and the log).
pub(crate) async fn pull(
    shared: &Shared,
    source: &Source,
    hashes: &[BlockHash],
) -> Result<(), String> {
    let result = transfer(shared, source).await;
    let counters = &shared.pd.counters;
    match result {
        Ok(blocks) => {
            let per_block = shared.args.pd.kv_transfer_ms_per_block;
            let wait = Duration::from_secs_f64(per_block * blocks as f64 / 1000.0);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let alloc = shared.kv_allocate(hashes);
            shared.kv_release(alloc, None);
            counters.pulled.fetch_add(1, Relaxed);
            Ok(())
        }
        Err(why) => {
            counters.pull_failures.fetch_add(1, Relaxed);
            Err(why)
        }
    }
}

/// The HTTP exchange with the prefill side; returns the blocks it handed over.
async fn transfer(shared: &Shared, source: &Source) -> Result<u64, String> {
    let (host, port, body) = match source {
        Source::Handle {
            host,
            port,
            engine_id,
            request_id,
            block_ids,
        } => (
            host,
            *port,
            serde_json::json!({
                "remote_engine_id": engine_id,
                "remote_request_id": request_id,
                "remote_block_ids": block_ids,
            }),
        ),
        Source::Room { host, port, room } => {
            (host, *port, serde_json::json!({ "bootstrap_room": room }))
        }
        Source::Incomplete(why) => return Err((*why).to_owned()),
    };
    let uri: Uri = format!("http://{host}:{port}/kv/pull")
        .parse()
        .map_err(|e| format!("bad prefill address {host}:{port}: {e}"))?;
    let body = bytes::Bytes::from(body.to_string());
    // A room's prefill may take up to the window to arrive; a little more for the answer.
    let limit =
        Duration::from_millis(shared.args.pd.kv_transfer_window_ms) + Duration::from_secs(5);
    let exchange = async {
        let response = shared
            .pd
            .client
            .post_json(uri, body, "kv-pull", None)
            .await
            .map_err(|e| format!("prefill side unreachable: {e}"))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|e| format!("prefill side broke off: {e}"))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(512)]).into_owned();
            return Err(format!("prefill side refused the pull ({status}): {text}"));
        }
        serde_json::from_slice::<Pulled>(&answer)
            .map(|p| p.blocks)
            .map_err(|e| format!("prefill side answered nonsense: {e}"))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| "the pull timed out".to_owned())?
}
