//! The prefill side: hold a prefill's KV and announce it (vLLM's answer), and serve pulls
//! (`POST /kv/pull`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Deserialize;

use crate::kv_cache::Allocation;
use crate::respond::{self, Body};
use crate::state::Shared;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullRequest {
    remote_engine_id: Option<String>,
    remote_request_id: Option<String>,
    remote_block_ids: Option<Vec<u64>>,
    bootstrap_room: Option<u64>,
}

/// Frees the KV of handles and rooms whose transfer window is over.
pub(crate) fn release_expired(shared: &Shared) {
    for alloc in shared.pd.handover.expired(std::time::Instant::now()) {
        shared.kv_release(alloc, None);
    }
}

/// `POST /kv/pull`: hands over (releases here) the KV a handle or room holds.
pub(crate) async fn handle_pull(shared: Arc<Shared>, body: Bytes) -> Response<Body> {
    release_expired(&shared);
    let request: PullRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return respond::error(StatusCode::BAD_REQUEST, format!("invalid pull: {e}")),
    };
    let handover = &shared.pd.handover;
    let taken = match request {
        PullRequest {
            bootstrap_room: Some(room),
            ..
        } => handover.take_room(room).await,
        PullRequest {
            remote_engine_id: Some(engine),
            remote_request_id: Some(handle),
            remote_block_ids: Some(ids),
            ..
        } => {
            if engine == shared.pd.engine_id {
                handover.take_handle(&handle, &ids)
            } else {
                Err(super::handover::PullError::Unknown)
            }
        }
        _ => {
            return respond::error(
                StatusCode::BAD_REQUEST,
                "a pull names a bootstrap_room, or remote_engine_id, remote_request_id and remote_block_ids",
            )
        }
    };
    match taken {
        Ok(held) => {
            let blocks = held.alloc.total;
            shared.kv_release(held.alloc, None);
            shared.pd.counters.handed_over.fetch_add(1, Relaxed);
            respond::json(
                StatusCode::OK,
                Bytes::from(format!("{{\"blocks\":{blocks}}}")),
            )
        }
        Err(e) => respond::error(StatusCode::NOT_FOUND, e.message()),
    }
}

/// vLLM: holds a finished prefill's KV under a fresh handle and adds `kv_transfer_params`
/// (NIXL's shape) to its answer.
pub(crate) fn prefill_answer(shared: &Shared, answer: Bytes, alloc: Allocation) -> Bytes {
    release_expired(shared);
    let handle = format!("{}-{}", shared.pd.engine_id, shared.next_id());
    let block_ids = shared.pd.handover.hold_handle(handle.clone(), alloc);
    shared.pd.counters.remote_prefills.fetch_add(1, Relaxed);
    let listen = shared.args.listen;
    // The side channel is this listener; an unspecified address is reached on loopback.
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        listen.ip().to_string()
    };
    let params = serde_json::json!({
        "do_remote_prefill": true,
        "do_remote_decode": false,
        "remote_block_ids": block_ids,
        "remote_engine_id": shared.pd.engine_id,
        "remote_request_id": handle,
        "remote_host": host,
        "remote_port": listen.port(),
        "tp_size": 1,
    });
    let mut body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&answer).unwrap_or_default();
    body.insert("kv_transfer_params".to_owned(), params);
    serde_json::to_vec(&body).map_or(answer, Bytes::from)
}

/// SGLang: holds a finished prefill's KV for `room`.
pub(crate) fn hold_room(shared: &Shared, room: u64, alloc: Allocation) {
    release_expired(shared);
    shared.pd.handover.hold_room(room, alloc);
    shared.pd.counters.remote_prefills.fetch_add(1, Relaxed);
}
