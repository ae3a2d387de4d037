//! `switchyard register`: the etcd sidecar for engines that cannot register themselves
//! (`switchyard_etcd::run_sidecar`; key layout and lease rules in `docs/discovery.md`).

use std::future::Future;
use std::time::Duration;

use clap::Args;
use switchyard_etcd::{EtcdConfig, SidecarConfig};
use switchyard_runtime::{Engine, InstanceSpec};

/// Keeps an etcd registration for a worker while its health endpoint answers 200.
///
/// The instance is registered under a lease renewed every TTL/3. After `--unhealthy-after`
/// failed checks in a row the lease is revoked (frontends stop routing there at once); it is
/// registered again when health returns. SIGTERM/Ctrl-C deregisters before exiting.
#[derive(Debug, Clone, Args)]
pub struct RegisterCmd {
    /// etcd endpoint(s), `http://host:port`, comma-separated.
    #[arg(long, env = "SWITCHYARD_ETCD", value_name = "URL")]
    pub etcd: String,
    /// Key prefix (must start and end with `/`; the frontend's `--etcd-prefix`).
    #[arg(long, alias = "etcd-prefix", env = "SWITCHYARD_ETCD_PREFIX", default_value = switchyard_etcd::keys::DEFAULT_PREFIX, value_name = "PREFIX")]
    pub prefix: String,
    /// Instance id (unique; reported in `x-switchyard-instance`).
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// Model the worker serves.
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// Worker base URL without `/v1`, e.g. `http://10.0.0.7:8000`.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Engine: vllm, sglang, trtllm, mocker or generic.
    #[arg(long, default_value = "generic", value_name = "ENGINE")]
    pub engine: String,
    /// Which OpenAI API the worker speaks: chat or completions.
    #[arg(long, default_value = "chat", value_name = "API")]
    pub api: String,
    /// A routing label `KEY=VALUE` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Routing weight.
    #[arg(long, default_value_t = 1.0)]
    pub weight: f32,
    /// Health URL polled by the sidecar [default: <url>/health].
    #[arg(long = "health-url", value_name = "URL")]
    pub health_url: Option<String>,
    /// Time between health checks, also the per-check timeout (`2s`, `500ms`).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Lease TTL (whole seconds, at least 2): a dead sidecar's key vanishes after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub ttl: Duration,
    /// Failed health checks in a row before the registration is withdrawn.
    #[arg(long = "unhealthy-after", default_value_t = 2, value_name = "N")]
    pub unhealthy_after: u32,
}

/// A flag duration in the product's one format (`500ms`, `2s`, `1m`; no bare numbers), at
/// most a day: a longer interval or TTL is a typo, not a setting.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = switchyard_protocol::duration::parse(s)?;
    if d > Duration::from_secs(86_400) {
        return Err(format!("`{}` is out of range (0 to 24h)", s.trim()));
    }
    Ok(d)
}

impl RegisterCmd {
    pub fn into_config(self) -> anyhow::Result<SidecarConfig> {
        // The enums' serde forms are the documented spellings (`vllm`, `completions`, ...).
        let engine: Engine = serde_json::from_value(serde_json::Value::String(self.engine.clone()))
            .map_err(|_| {
                anyhow::anyhow!(
                    "--engine `{}`: expected vllm, sglang, trtllm, llamacpp, mocker or generic",
                    self.engine
                )
            })?;
        let api = serde_json::from_value(serde_json::Value::String(self.api.clone()))
            .map_err(|_| anyhow::anyhow!("--api `{}`: expected chat or completions", self.api))?;
        let mut spec = InstanceSpec::new(self.id, self.model, self.url.trim_end_matches('/'));
        spec.engine = engine;
        spec.api = api;
        spec.weight = self.weight;
        for label in &self.labels {
            let (k, v) = label
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--label `{label}`: expected KEY=VALUE"))?;
            spec.labels.insert(k.to_owned(), v.to_owned());
        }
        let mut etcd = EtcdConfig::new(&self.etcd);
        etcd.prefix = self.prefix;
        etcd.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let health_url = self
            .health_url
            .unwrap_or_else(|| format!("{}/health", spec.url));
        let mut cfg = SidecarConfig::new(etcd, spec, health_url);
        cfg.interval = self.interval.max(Duration::from_millis(50));
        cfg.ttl = self.ttl;
        cfg.unhealthy_after = self.unhealthy_after.max(1);
        Ok(cfg)
    }
}

/// Runs the sidecar until `shutdown` resolves.
pub async fn run(cmd: RegisterCmd, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let cfg = cmd.into_config()?;
    tracing::info!(id = %cfg.spec.id, health = %cfg.health_url, "register sidecar running");
    switchyard_etcd::run_sidecar(cfg, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("3").unwrap_err().contains("has no unit"));
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("1e99s").is_err());
    }
}
