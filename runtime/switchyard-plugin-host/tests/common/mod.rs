//! Shared helpers for the integration tests: locating the built plugins and making inputs.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::PathBuf;
use std::time::Duration;

use switchyard_plugin_host::{
    Candidate, Health, HostConfig, LoadedPlugin, PluginHost, PluginLimits, Request,
};

/// Bytes of `plugins/target/wasm/<name>.wasm`. Fails the test (never skips it) when the file
/// is missing, saying how to build it.
pub fn wasm(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm")
        .join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "cannot read plugin {} ({e}). Build the plugins first: scripts/build-plugins.sh",
            path.display()
        ),
    }
}

pub fn host() -> PluginHost {
    PluginHost::new(HostConfig::default()).unwrap_or_else(|e| panic!("plugin host: {e}"))
}

/// Loads with default limits except a generous decision budget: this machine is shared and
/// busy, and these tests are about behaviour, not timing (timeouts have their own test).
pub fn load(host: &PluginHost, name: &str, config: &str) -> LoadedPlugin {
    load_with(host, name, config, relaxed_limits())
}

pub fn relaxed_limits() -> PluginLimits {
    PluginLimits {
        decision_budget: Duration::from_millis(500),
        ..PluginLimits::default()
    }
}

pub fn load_with(
    host: &PluginHost,
    name: &str,
    config: &str,
    limits: PluginLimits,
) -> LoadedPlugin {
    host.load(name, &wasm(name), limits, config)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Limits for Python/JS components: their runtimes need more memory and a slower first call.
pub fn interpreted_limits() -> PluginLimits {
    PluginLimits {
        memory_bytes: 256 << 20,
        decision_budget: Duration::from_millis(500),
        init_budget: Duration::from_secs(10),
        ..PluginLimits::default()
    }
}

pub fn request(prompt_blocks: u32) -> Request {
    Request {
        model_index: 0,
        prompt_blocks,
        prompt_tokens: prompt_blocks * 16,
        max_tokens: 100,
        session_hash: None,
        prefix_hash: 42,
        streaming: false,
        ..Request::default()
    }
}

/// A candidate with only the load and cache fields set; everything else neutral.
pub fn candidate(id: u32, in_flight: u32, cached_prefix_blocks: u32) -> Candidate {
    Candidate {
        id,
        in_flight,
        queued: 0,
        kv_usage: 0.0,
        cached_prefix_blocks,
        ttft_ewma_ms: 0.0,
        itl_ewma_ms: 0.0,
        health: Health::Healthy,
        weight: 1.0,
        running: 0,
        adapter_resident: false,
    }
}
