//! `switchyard kv-bridge`: vLLM's ZMQ KV-event stream, re-hashed into Switchyard block hashes
//! and republished on NATS as one instance (`switchyard_nats::bridge`; `docs/events.md`).

use std::future::Future;

use clap::Args;
use switchyard_nats::bridge::{run_bridge, BridgeConfig};

/// Subscribes to a vLLM engine's ZMQ KV-event publisher and republishes its events on NATS.
///
/// Start vLLM with
/// `--kv-events-config '{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557", "topic": "kv-events"}'`.
/// `--block-size` must equal vLLM's `--block-size` and the frontend's `kv.block_size`, and the
/// frontend must hash prompts over token ids with the engine's tokenizer for the hashes to match.
#[derive(Debug, Clone, Args)]
pub struct KvBridgeCmd {
    /// vLLM's ZMQ KV-event endpoint, e.g. `tcp://127.0.0.1:5557`.
    #[arg(long, value_name = "ENDPOINT")]
    pub zmq: String,
    /// ZMQ topic prefix to subscribe to (vLLM's `topic`; empty = everything).
    #[arg(long, default_value = "", value_name = "TOPIC")]
    pub topic: String,
    /// Instance id the frontends know this engine by (its discovery id).
    #[arg(long = "instance", alias = "instance-id", value_name = "ID")]
    pub instance: String,
    /// Tokens per KV block (must match vLLM and the frontend).
    #[arg(long = "block-size", default_value_t = 16, value_name = "N")]
    pub block_size: usize,
    /// NATS server to publish to.
    #[arg(long, env = "SWITCHYARD_NATS", value_name = "URL")]
    pub nats: String,
}

/// Runs the bridge until `shutdown` resolves.
pub async fn run(cmd: KvBridgeCmd, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let conn = switchyard_nats::connect(&cmd.nats, &format!("kv-bridge {}", cmd.instance))
        .await
        .map_err(|e| anyhow::anyhow!("--nats {}: {e}", switchyard_nats::redact_url(&cmd.nats)))?;
    let cfg = BridgeConfig {
        zmq_endpoint: cmd.zmq,
        topic: cmd.topic,
        instance_id: cmd.instance,
        block_size: cmd.block_size,
    };
    run_bridge(&conn, cfg, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("kv-bridge: {e}"))
}
