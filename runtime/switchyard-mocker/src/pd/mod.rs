//! The mocker's part in disaggregated serving (`docs/disaggregation.md`), in both engines'
//! protocols:
//!
//! - **vLLM** (KV connector): a request whose `kv_transfer_params.do_remote_decode` is true is
//!   prefilled (it asks for one token), its KV blocks are held for `--kv-transfer-window-ms`,
//!   and the answer carries `kv_transfer_params` naming them (`remote_engine_id`,
//!   `remote_request_id`, `remote_block_ids`, `remote_host`, `remote_port`, …). A request whose
//!   `kv_transfer_params.do_remote_prefill` is true pulls those blocks from
//!   `remote_host:remote_port` before decoding.
//! - **SGLang** (bootstrap): with `--role prefill`, a request carrying `bootstrap_room` is
//!   prefilled and its KV held for that room; with `--role decode`, it waits for the room's
//!   prefill at `bootstrap_host:bootstrap_port` and pulls it.
//!
//! The pull is an HTTP call to the prefill mocker's `POST /kv/pull` (standing in for NIXL's
//! side channel or SGLang's bootstrap server): the prefill side checks the handle against
//! what it holds, so a wrong, used or expired handle fails the way it fails an engine. A good
//! pull costs `--kv-transfer-ms-per-block` per block and leaves the prompt warm in the
//! decode's cache, so its own prefill is one step.

pub mod args;
pub mod handover;
mod pull;
mod serve;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Deserialize;
use switchyard_runtime::exposition::Scrape;
use switchyard_runtime::{ClientConfig, WorkerClient};

pub(crate) use pull::pull;
pub(crate) use serve::{handle_pull, hold_room, prefill_answer};

use handover::Handover;

/// What the disaggregation fields of one request ask of this mocker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Nothing: an ordinary request.
    Whole,
    /// vLLM prefill for a remote decode: hold the KV, answer with a handle.
    PrefillForHandle,
    /// SGLang prefill: hold the KV for this room.
    PrefillForRoom(u64),
    /// Decode: pull KV first from here.
    Pull(Source),
}

/// Where a decode pulls from, and what it presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Handle {
        host: String,
        port: u16,
        engine_id: String,
        request_id: String,
        block_ids: Vec<u64>,
    },
    Room {
        host: String,
        port: u16,
        room: u64,
    },
    /// `do_remote_prefill` without a complete handle.
    Incomplete(&'static str),
}

/// vLLM's `kv_transfer_params` as a request carries them (other keys are ignored).
#[derive(Debug, Default, Deserialize)]
struct TransferParams {
    #[serde(default)]
    do_remote_decode: bool,
    #[serde(default)]
    do_remote_prefill: bool,
    remote_engine_id: Option<String>,
    remote_request_id: Option<String>,
    remote_block_ids: Option<Vec<u64>>,
    remote_host: Option<String>,
    remote_port: Option<u16>,
}

/// The disaggregation fields of a generation request; ill-typed values make the request a 400.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Fields {
    #[serde(default)]
    kv_transfer_params: Option<TransferParams>,
    bootstrap_host: Option<String>,
    bootstrap_port: Option<u16>,
    bootstrap_room: Option<u64>,
}

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))
    }

    /// What these fields ask of a mocker in `role`.
    pub fn stage(self, role: args::Role) -> Stage {
        if let Some(p) = self.kv_transfer_params {
            if p.do_remote_decode {
                return Stage::PrefillForHandle;
            }
            if p.do_remote_prefill {
                return Stage::Pull(
                    match (
                        p.remote_host,
                        p.remote_port,
                        p.remote_engine_id,
                        p.remote_request_id,
                        p.remote_block_ids,
                    ) {
                        (Some(host), Some(port), Some(engine_id), Some(request_id), Some(ids)) => {
                            Source::Handle {
                                host,
                                port,
                                engine_id,
                                request_id,
                                block_ids: ids,
                            }
                        }
                        _ => Source::Incomplete(
                            "kv_transfer_params lacks remote_host, remote_port, remote_engine_id, remote_request_id or remote_block_ids",
                        ),
                    },
                );
            }
        }
        let Some(room) = self.bootstrap_room else {
            return Stage::Whole;
        };
        match role {
            args::Role::Both => Stage::Whole,
            args::Role::Prefill => Stage::PrefillForRoom(room),
            args::Role::Decode => Stage::Pull(match (self.bootstrap_host, self.bootstrap_port) {
                (Some(host), Some(port)) => Source::Room { host, port, room },
                _ => Source::Incomplete("bootstrap_room without bootstrap_host and bootstrap_port"),
            }),
        }
    }
}

/// Per-mocker disaggregation state.
#[derive(Debug)]
pub(crate) struct PdState {
    /// This engine's id in handles (a restarted mocker never honours an old handle).
    pub engine_id: String,
    pub handover: Handover,
    pub client: WorkerClient,
    pub counters: Counters,
}

impl PdState {
    pub fn new(args: &args::PdArgs) -> Self {
        Self {
            engine_id: format!("mocker-{:016x}", rand::random::<u64>()),
            handover: Handover::new(Duration::from_millis(args.kv_transfer_window_ms)),
            client: WorkerClient::new(&ClientConfig::default()),
            counters: Counters::default(),
        }
    }
}

/// Counters the tests and `/metrics` read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Prefills done for a remote decode (either protocol).
    pub(crate) remote_prefills: AtomicU64,
    /// Pulls this prefill side served.
    pub(crate) handed_over: AtomicU64,
    /// Pulls this decode side completed.
    pub(crate) pulled: AtomicU64,
    /// Pulls this decode side attempted that failed.
    pub(crate) pull_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn collect(&self, role: args::Role, held_blocks: usize, s: &mut Scrape) {
        use crate::metrics::names;
        s.family(&names::INFO)
            .value(&[("role", role.as_str())], 1.0);
        for (family, value) in [
            (&names::REMOTE_PREFILLS, self.remote_prefills.load(Relaxed)),
            (&names::KV_HANDED_OVER, self.handed_over.load(Relaxed)),
            (&names::KV_PULLS, self.pulled.load(Relaxed)),
            (&names::KV_PULL_FAILURES, self.pull_failures.load(Relaxed)),
            (&names::KV_HELD_BLOCKS, held_blocks as u64),
        ] {
            s.family(family).value(&[], value as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::args::Role;
    use super::*;

    fn stage(body: &str, role: Role) -> Stage {
        Fields::parse(body.as_bytes()).unwrap().stage(role)
    }

    #[test]
    fn the_fields_pick_the_stage_by_protocol_and_role() {
        assert_eq!(stage(r#"{"model":"m"}"#, Role::Decode), Stage::Whole);
        assert_eq!(
            stage(
                r#"{"kv_transfer_params":{"do_remote_decode":true,"remote_host":null}}"#,
                Role::Both
            ),
            Stage::PrefillForHandle
        );
        let pull = stage(
            r#"{"kv_transfer_params":{"do_remote_prefill":true,"remote_host":"127.0.0.1","remote_port":9,"remote_engine_id":"e","remote_request_id":"r","remote_block_ids":[4,5],"tp_size":1}}"#,
            Role::Both,
        );
        assert_eq!(
            pull,
            Stage::Pull(Source::Handle {
                host: "127.0.0.1".into(),
                port: 9,
                engine_id: "e".into(),
                request_id: "r".into(),
                block_ids: vec![4, 5]
            })
        );
        assert!(matches!(
            stage(
                r#"{"kv_transfer_params":{"do_remote_prefill":true}}"#,
                Role::Both
            ),
            Stage::Pull(Source::Incomplete(_))
        ));
        let sg = r#"{"bootstrap_host":"h","bootstrap_port":8998,"bootstrap_room":42}"#;
        assert_eq!(stage(sg, Role::Both), Stage::Whole);
        assert_eq!(stage(sg, Role::Prefill), Stage::PrefillForRoom(42));
        assert_eq!(
            stage(sg, Role::Decode),
            Stage::Pull(Source::Room {
                host: "h".into(),
                port: 8998,
                room: 42
            })
        );
        assert!(Fields::parse(br#"{"bootstrap_room":"x"}"#).is_err());
        assert!(Fields::parse(br#"{"kv_transfer_params":{"remote_port":70000}}"#).is_err());
    }
}
