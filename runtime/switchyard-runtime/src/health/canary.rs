//! Active health, part two: the idle canary. `GET /health` says the server is up; it does not
//! say the engine can still generate (a wedged scheduler, a dead GPU). An instance that has
//! had no traffic for `idle_ms` gets a one-token generation in its engine's dialect; a
//! timeout, connection error or 5xx counts against it, `healthy_threshold` consecutive
//! successes bring it back. An instance's own [`CanaryOverride`] (path, body, idle time,
//! timeout; on Kubernetes from its WorkerPool) wins over this config, field by field.
//!
//! [`CanaryOverride`]: crate::instance::CanaryOverride

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
use crate::{Engine, InstanceSpec, WorkerApi};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryConfig {
    /// An instance idle this long gets a canary, milliseconds; 0 disables the canary.
    #[serde(rename = "idle", with = "switchyard_protocol::duration::millis")]
    pub idle_ms: u64,
    /// A canary slower than this (headers and body) fails, milliseconds.
    #[serde(rename = "timeout", with = "switchyard_protocol::duration::millis")]
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
            return Err("canary.timeout must be greater than 0".into());
        }
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            return Err("canary thresholds must be at least 1".into());
        }
        for (engine, payload) in &self.payloads {
            if !matches!(
                engine.as_str(),
                "vllm" | "sglang" | "trtllm" | "llamacpp" | "mocker" | "generic"
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
        let (path, body) = self.template(engine, api);
        (path, with_model(&body, model))
    }

    /// The request sent to the instance `spec`: its own override of path or body first, then
    /// this config's payload for its engine.
    pub fn payload_for(&self, spec: &InstanceSpec) -> (String, String) {
        let (path, body) = self.template(spec.engine, spec.api);
        let own = spec.canary.as_ref();
        let path = own.and_then(|o| o.path.clone()).unwrap_or(path);
        let body = own.and_then(|o| o.body.clone()).unwrap_or(body);
        (path, with_model(&body, &spec.model))
    }

    /// Idle time before `spec`'s instance gets a canary (its override first), milliseconds.
    pub fn idle_ms_for(&self, spec: &InstanceSpec) -> u64 {
        spec.canary
            .as_ref()
            .and_then(|o| o.idle_ms)
            .unwrap_or(self.idle_ms)
    }

    /// Timeout of a canary to `spec`'s instance (its override first), milliseconds.
    pub fn timeout_ms_for(&self, spec: &InstanceSpec) -> u64 {
        spec.canary
            .as_ref()
            .and_then(|o| o.timeout_ms)
            .unwrap_or(self.timeout_ms)
    }

    /// Path and body before `{model}` is filled in.
    fn template(&self, engine: Engine, api: WorkerApi) -> (String, String) {
        match self.payloads.get(engine_key(engine)) {
            Some(p) => (p.path.clone(), p.body.clone()),
            None => {
                let engine = match (api, engine) {
                    (WorkerApi::Completions, Engine::Generic | Engine::Mocker) => Engine::Vllm,
                    _ => engine,
                };
                let (path, body) = builtin(engine);
                (path.to_owned(), body.to_owned())
            }
        }
    }
}

/// `body` with `{model}` replaced by the JSON-escaped model name.
fn with_model(body: &str, model: &str) -> String {
    let escaped = serde_json::to_string(model).unwrap_or_default();
    body.replace("{model}", escaped.trim_matches('"'))
}

fn engine_key(engine: Engine) -> &'static str {
    match engine {
        Engine::Vllm => "vllm",
        Engine::Sglang => "sglang",
        Engine::Trtllm => "trtllm",
        Engine::Llamacpp => "llamacpp",
        Engine::Mocker => "mocker",
        Engine::Generic => "generic",
    }
}

/// Built-in one-token generations: OpenAI completions for vLLM, TensorRT-LLM's
/// `trtllm-serve` and llama.cpp's `llama-server`, SGLang's native `/generate`, and chat for
/// anything else.
fn builtin(engine: Engine) -> (&'static str, &'static str) {
    match engine {
        Engine::Vllm | Engine::Trtllm | Engine::Llamacpp => (
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
    Some(tokio::spawn(async move {
        loop {
            // Scan often enough that an idle instance is checked soon after its idle time, and
            // a failed one is re-checked promptly (it gets no traffic, so only the canary can
            // bring it back); instances may bring shorter idle times of their own.
            let shortest = registry
                .all()
                .iter()
                .map(|i| config.idle_ms_for(&i.spec))
                .filter(|&ms| ms > 0)
                .min()
                .unwrap_or(config.idle_ms);
            tokio::time::sleep(Duration::from_millis((shortest / 4).clamp(20, 5_000))).await;
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
    let idle_ms = config.idle_ms_for(&instance.spec);
    if idle_ms == 0 {
        return false;
    }
    if !instance.health.canary_ok() {
        return true;
    }
    instance.load.in_flight() == 0
        && instance.health.idle_ns(now) >= idle_ms.saturating_mul(1_000_000)
}

async fn check(client: &WorkerClient, instance: &Instance, config: &CanaryConfig) {
    let Some(ok) = canary_once(client, instance, config).await else {
        // Out of local resources: no verdict about the worker either way.
        return;
    };
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

/// One canary: `Some(verdict)`, or `None` when this process could not even try (out of
/// local resources), which says nothing about the worker.
async fn canary_once(
    client: &WorkerClient,
    instance: &Instance,
    config: &CanaryConfig,
) -> Option<bool> {
    let spec = &instance.spec;
    let (path, body) = config.payload_for(spec);
    let Ok(uri) = format!("{}{path}", instance.spec.url.trim_end_matches('/')).parse::<Uri>()
    else {
        return Some(false);
    };
    let call = async {
        let response = match client
            .post_json(
                uri,
                Bytes::from(body),
                "switchyard-canary",
                spec.auth_header(),
            )
            .await
        {
            Ok(response) => response,
            Err(e) if e.is_local_exhaustion() => return None,
            Err(_) => return Some(false),
        };
        let status = response.status();
        // Read the whole (small) answer: a worker that sends headers and then hangs fails.
        if Limited::new(response.into_body(), 1024 * 1024)
            .collect()
            .await
            .is_err()
        {
            return Some(false);
        }
        // A 4xx means the canary itself is wrong for this worker (auth, model name, path),
        // not that the worker is sick: counting it would eject a healthy fleet.
        if status.is_client_error() {
            tracing::warn!(instance = instance.id(), %status, "canary payload refused; check canary.payloads");
        }
        Some(status.is_success() || status.is_client_error())
    };
    match tokio::time::timeout(Duration::from_millis(config.timeout_ms_for(spec)), call).await {
        Ok(None) => {
            tracing::warn!(
                instance = instance.id(),
                "canary not sent: local resources exhausted"
            );
            None
        }
        Ok(verdict) => Some(verdict == Some(true)),
        Err(_) => Some(false),
    }
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

    /// A worker that records one request's path and body, answering `200 {}` when `answer`.
    async fn recording_worker(
        answer: bool,
    ) -> (String, tokio::sync::oneshot::Receiver<(String, String)>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then as many body bytes as content-length says.
            let (head, body) = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_owned(), body.to_owned());
                    }
                }
            };
            let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
            let _ = tx.send((path, body));
            if answer {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    .await;
            } else {
                // Hold the connection open without answering.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
        (url, rx)
    }

    fn instance(url: &str, canary: crate::instance::CanaryOverride) -> Instance {
        let mut spec = InstanceSpec::new("w", "org/m", url);
        spec.engine = Engine::Vllm;
        spec.canary = Some(canary);
        Instance::new(spec, None)
    }

    #[tokio::test]
    async fn the_instance_override_is_what_gets_sent() {
        let (url, sent) = recording_worker(true).await;
        let inst = instance(
            &url,
            crate::instance::CanaryOverride {
                path: Some("/v1/chat/completions".into()),
                body: Some(r#"{"model":"{model}","messages":[],"max_tokens":1}"#.into()),
                ..Default::default()
            },
        );
        let client = WorkerClient::new(&crate::ClientConfig::default());
        let ok = canary_once(&client, &inst, &CanaryConfig::default()).await;
        let (path, body) = sent.await.unwrap();
        assert_eq!(ok, Some(true));
        assert_eq!(
            path, "/v1/chat/completions",
            "not vLLM's built-in /v1/completions"
        );
        assert_eq!(body, r#"{"model":"org/m","messages":[],"max_tokens":1}"#);
    }

    #[test]
    fn overrides_fall_back_field_by_field() {
        let cfg = CanaryConfig::default();
        let mut spec = InstanceSpec::new("w", "m", "http://x");
        spec.engine = Engine::Sglang;
        assert_eq!(
            cfg.payload_for(&spec),
            cfg.payload(Engine::Sglang, WorkerApi::Chat, "m")
        );
        assert_eq!(cfg.idle_ms_for(&spec), cfg.idle_ms);
        spec.canary = Some(crate::instance::CanaryOverride {
            body: Some("{}".into()),
            idle_ms: Some(1_000),
            ..Default::default()
        });
        assert_eq!(
            cfg.payload_for(&spec),
            ("/generate".to_owned(), "{}".to_owned())
        );
        assert_eq!(cfg.idle_ms_for(&spec), 1_000);
        assert_eq!(cfg.timeout_ms_for(&spec), cfg.timeout_ms);
    }

    #[tokio::test]
    async fn the_instance_timeout_wins_over_the_config() {
        let (url, _sent) = recording_worker(false).await;
        let inst = instance(
            &url,
            crate::instance::CanaryOverride {
                timeout_ms: Some(50),
                ..Default::default()
            },
        );
        let client = WorkerClient::new(&crate::ClientConfig::default());
        let config = CanaryConfig {
            timeout_ms: 600_000,
            ..CanaryConfig::default()
        };
        // With the config's 10 minutes this would not finish within the bounded wait.
        let ok = tokio::time::timeout(
            Duration::from_secs(10),
            canary_once(&client, &inst, &config),
        )
        .await
        .expect("the 50 ms instance timeout applied");
        assert_eq!(
            ok,
            Some(false),
            "a worker that never answers fails the canary"
        );
    }

    #[test]
    fn an_instance_can_turn_its_canary_off() {
        let cfg = CanaryConfig::default();
        let inst = instance(
            "http://127.0.0.1:9",
            crate::instance::CanaryOverride {
                idle_ms: Some(0),
                ..Default::default()
            },
        );
        assert!(!is_due(&inst, u64::MAX / 2, &cfg));
        let inst = instance(
            "http://127.0.0.1:9",
            crate::instance::CanaryOverride {
                idle_ms: Some(1),
                ..Default::default()
            },
        );
        assert!(is_due(&inst, u64::MAX / 2, &cfg));
    }
}
