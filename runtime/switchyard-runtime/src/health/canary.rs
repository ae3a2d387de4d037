//! Active health, part two: the idle canary. `GET /health` says the server is up; it does not
//! say the engine can still generate (a wedged scheduler, a dead GPU). An instance that has
//! had no traffic for `idle_ms` gets a one-token generation in its engine's dialect; a
//! timeout, connection error or 5xx counts against it, `healthy_threshold` consecutive
//! successes bring it back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::client::WorkerClient;
use crate::clock::now_ns;
use crate::live::Instance;
use crate::registry::Registry;
use crate::{Engine, WorkerApi};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryConfig {
    /// An instance idle this long gets a canary, milliseconds; 0 disables the canary.
    pub idle_ms: u64,
    /// A canary slower than this (headers and body) fails, milliseconds.
    pub timeout_ms: u64,
    /// Consecutive failed canaries that mark the instance unhealthy.
    pub unhealthy_threshold: u32,
    /// Consecutive successful canaries that bring it back.
    pub healthy_threshold: u32,
    /// Per-engine overrides of the built-in payloads, keyed `vllm`, `sglang`, `trtllm`,
    /// `mocker` or `generic`. `{model}` in the body is replaced by the JSON-escaped model.
    pub payloads: BTreeMap<String, CanaryPayload>,
}

/// One canary request: the path on the worker and the JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryPayload {
    pub path: String,
    pub body: String,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            idle_ms: 30_000,
            timeout_ms: 10_000,
            unhealthy_threshold: 1,
            healthy_threshold: 2,
            payloads: BTreeMap::new(),
        }
    }
}

impl CanaryConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_ms > 0 && self.timeout_ms == 0 {
            return Err("canary.timeout_ms must be greater than 0".into());
        }
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            return Err("canary thresholds must be at least 1".into());
        }
        for (engine, payload) in &self.payloads {
            if !matches!(
                engine.as_str(),
                "vllm" | "sglang" | "trtllm" | "mocker" | "generic"
            ) {
                return Err(format!("canary.payloads: unknown engine `{engine}`"));
            }
            if !payload.path.starts_with('/') {
                return Err(format!("canary.payloads.{engine}.path must start with `/`"));
            }
        }
        Ok(())
    }

    /// The request sent to an instance of `engine` serving `model` (a completions-only
    /// instance gets the completions payload whatever its engine).
    pub fn payload(&self, engine: Engine, api: WorkerApi, model: &str) -> (String, String) {
        let key = engine_key(engine);
        let (path, body) = match self.payloads.get(key) {
            Some(p) => (p.path.clone(), p.body.clone()),
            None => {
                let engine = match (api, engine) {
                    (WorkerApi::Completions, Engine::Generic | Engine::Mocker) => Engine::Vllm,
                    _ => engine,
                };
                let (path, body) = builtin(engine);
                (path.to_owned(), body.to_owned())
            }
        };
        let escaped = serde_json::to_string(model).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        (path, body.replace("{model}", escaped))
    }
}

fn engine_key(engine: Engine) -> &'static str {
    match engine {
        Engine::Vllm => "vllm",
        Engine::Sglang => "sglang",
        Engine::Trtllm => "trtllm",
        Engine::Mocker => "mocker",
        Engine::Generic => "generic",
    }
}

/// Built-in one-token generations: OpenAI completions for vLLM and TensorRT-LLM's
/// `trtllm-serve`, SGLang's native `/generate`, and chat for anything else.
fn builtin(engine: Engine) -> (&'static str, &'static str) {
    match engine {
        Engine::Vllm | Engine::Trtllm => (
            "/v1/completions",
            r#"{"model":"{model}","prompt":"Hi","max_tokens":1,"temperature":0}"#,
        ),
        Engine::Sglang => (
            "/generate",
            r#"{"text":"Hi","sampling_params":{"max_new_tokens":1,"temperature":0}}"#,
        ),
        Engine::Mocker | Engine::Generic => (
            "/v1/chat/completions",
            r#"{"model":"{model}","messages":[{"role":"user","content":"Hi"}],"max_tokens":1}"#,
        ),
    }
}

/// Runs the canary over `registry` until aborted; `None` when disabled.
pub fn spawn_canary(
    registry: Arc<Registry>,
    client: WorkerClient,
    config: CanaryConfig,
) -> Option<JoinHandle<()>> {
    if config.idle_ms == 0 {
        return None;
    }
    // Scan often enough that an idle instance is checked soon after `idle_ms`, and a failed
    // one is re-checked promptly (it gets no traffic, so only the canary can bring it back).
    let period = Duration::from_millis((config.idle_ms / 4).clamp(20, 5_000));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = now_ns();
            let due: Vec<Arc<Instance>> = registry
                .all()
                .into_iter()
                .filter(|i| is_due(i, now, &config))
                .collect();
            let checks = due.iter().map(|instance| {
                instance.health.touch(now);
                check(&client, instance, &config)
            });
            futures_util::future::join_all(checks).await;
        }
    }))
}

fn is_due(instance: &Instance, now: u64, config: &CanaryConfig) -> bool {
    if !instance.health.canary_ok() {
        return true;
    }
    instance.load.in_flight() == 0
        && instance.health.idle_ns(now) >= config.idle_ms.saturating_mul(1_000_000)
}

async fn check(client: &WorkerClient, instance: &Instance, config: &CanaryConfig) {
    let ok = canary_once(client, instance, config).await;
    let was_ok = instance.health.canary_ok();
    let now_ok =
        instance
            .health
            .record_canary(ok, config.unhealthy_threshold, config.healthy_threshold);
    if was_ok != now_ok {
        tracing::warn!(
            instance = instance.id(),
            healthy = now_ok,
            "canary verdict changed"
        );
    }
}

async fn canary_once(client: &WorkerClient, instance: &Instance, config: &CanaryConfig) -> bool {
    let spec = &instance.spec;
    let (path, body) = config.payload(spec.engine, spec.api, &spec.model);
    let Ok(uri) = format!("{}{path}", instance.spec.url.trim_end_matches('/')).parse::<Uri>()
    else {
        return false;
    };
    let call = async {
        let response = client
            .post_json(uri, Bytes::from(body), "switchyard-canary")
            .await
            .ok()?;
        let status = response.status();
        // Read the whole (small) answer: a worker that sends headers and then hangs fails.
        Limited::new(response.into_body(), 1024 * 1024)
            .collect()
            .await
            .ok()?;
        // A 4xx means the canary itself is wrong for this worker (auth, model name, path),
        // not that the worker is sick: counting it would eject a healthy fleet.
        if status.is_client_error() {
            tracing::warn!(instance = instance.id(), %status, "canary payload refused; check canary.payloads");
        }
        Some(status.is_success() || status.is_client_error())
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(config.timeout_ms), call).await,
        Ok(Some(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_follow_the_engine_and_escape_the_model() {
        let cfg = CanaryConfig::default();
        let (path, body) = cfg.payload(Engine::Sglang, WorkerApi::Chat, "m");
        assert_eq!(path, "/generate");
        assert!(body.contains("max_new_tokens"));
        let (path, body) = cfg.payload(Engine::Vllm, WorkerApi::Chat, "a\"b");
        assert_eq!(path, "/v1/completions");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["model"], "a\"b");
        assert_eq!(v["max_tokens"], 1);
        let (path, _) = cfg.payload(Engine::Generic, WorkerApi::Chat, "m");
        assert_eq!(path, "/v1/chat/completions");
        let (path, _) = cfg.payload(Engine::Generic, WorkerApi::Completions, "m");
        assert_eq!(
            path, "/v1/completions",
            "a completions-only worker has no chat endpoint"
        );
    }

    #[test]
    fn overrides_replace_the_builtin_and_are_validated() {
        let mut cfg = CanaryConfig::default();
        cfg.payloads.insert(
            "vllm".into(),
            CanaryPayload {
                path: "/ping".into(),
                body: r#"{"m":"{model}"}"#.into(),
            },
        );
        assert_eq!(
            cfg.payload(Engine::Vllm, WorkerApi::Chat, "x"),
            ("/ping".to_owned(), r#"{"m":"x"}"#.to_owned())
        );
        assert!(cfg.validate().is_ok());
        cfg.payloads.insert(
            "tgi".into(),
            CanaryPayload {
                path: "/".into(),
                body: String::new(),
            },
        );
        assert!(cfg.validate().is_err());
    }
}
