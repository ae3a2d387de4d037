//! The engines' adapter API as the operator speaks it: which adapters an instance has
//! (`GET /v1/models`, where vLLM lists each loaded adapter with `parent` set to its base model)
//! and loading one (vLLM `POST /v1/load_lora_adapter`, SGLang `POST /load_lora_adapter`, both
//! `{"lora_name","lora_path"}`; other engines are spoken to as vLLM, as the frontend does).
//! Answers are untrusted: bounded reads, a timeout per call, errors cut to a loggable length.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Limited};
use switchyard_k8s::EngineKind;
use switchyard_runtime::{ClientConfig, WorkerAuth, WorkerClient};

/// Largest answer read: a model list with many adapters, or an error message.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// One call's deadline: loading an adapter may download it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A pooled HTTP client for engines' adapter APIs.
pub struct LoraEngine {
    client: WorkerClient,
    timeout: Duration,
}

impl Default for LoraEngine {
    fn default() -> Self {
        Self {
            client: WorkerClient::new(&ClientConfig::default()),
            timeout: CALL_TIMEOUT,
        }
    }
}

impl LoraEngine {
    /// The adapters `url`'s engine lists in `/v1/models` (entries with a `parent`).
    pub async fn loaded(
        &self,
        url: &str,
        auth: Option<&WorkerAuth>,
    ) -> Result<Vec<String>, String> {
        let uri = uri(url, "/v1/models")?;
        let (status, body) = self
            .exchange(async { self.client.get(uri, auth.map(WorkerAuth::header)).await })
            .await?;
        if status != 200 {
            return Err(format!("GET /v1/models: {status} {}", cut(&body)));
        }
        let list: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("GET /v1/models: {e}"))?;
        Ok(list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["parent"].is_string())
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Loads `name` from `source` on `url`'s engine. vLLM refuses a second load of a name
    /// with 400 "has already been loaded": that is the state wanted.
    pub async fn load(
        &self,
        url: &str,
        engine: EngineKind,
        (name, source): (&str, &str),
        auth: Option<&WorkerAuth>,
    ) -> Result<(), String> {
        let path = match engine {
            EngineKind::Sglang => "/load_lora_adapter",
            _ => "/v1/load_lora_adapter",
        };
        let body = serde_json::json!({"lora_name": name, "lora_path": source});
        let (status, text) = self.post(url, path, &body, auth).await?;
        let text = String::from_utf8_lossy(&text);
        let sglang_refused = engine == EngineKind::Sglang
            && serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|v| v["success"] == serde_json::Value::Bool(false));
        let ok = (200..300).contains(&status) && !sglang_refused
            || status == 400 && text.contains("has already been loaded");
        if ok {
            Ok(())
        } else {
            Err(format!("POST {path}: {status} {}", cut(text.as_bytes())))
        }
    }

    /// Unloads `name` from `url`'s engine; an engine that does not have it (404, or SGLang's
    /// refusal) is already where we want it.
    pub async fn unload(
        &self,
        url: &str,
        engine: EngineKind,
        name: &str,
        auth: Option<&WorkerAuth>,
    ) -> Result<(), String> {
        let path = match engine {
            EngineKind::Sglang => "/unload_lora_adapter",
            _ => "/v1/unload_lora_adapter",
        };
        let body = serde_json::json!({"lora_name": name});
        let (status, text) = self.post(url, path, &body, auth).await?;
        if (200..300).contains(&status) || status == 404 {
            Ok(())
        } else {
            Err(format!("POST {path}: {status} {}", cut(&text)))
        }
    }

    /// POSTs `body` to `path` on `url`'s engine: its status and (bounded) answer.
    async fn post(
        &self,
        url: &str,
        path: &str,
        body: &serde_json::Value,
        auth: Option<&WorkerAuth>,
    ) -> Result<(u16, Bytes), String> {
        let uri = uri(url, path)?;
        let body = Bytes::from(body.to_string());
        self.exchange(async {
            self.client
                .post_json(
                    uri,
                    body,
                    "switchyard-operator",
                    auth.map(WorkerAuth::header),
                )
                .await
        })
        .await
    }

    async fn exchange<F>(&self, send: F) -> Result<(u16, Bytes), String>
    where
        F: std::future::Future<
            Output = Result<
                http::Response<switchyard_runtime::WorkerBody>,
                switchyard_runtime::ClientError,
            >,
        >,
    {
        let call = async {
            let response = send.await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))?
    }
}

fn uri(base: &str, path: &str) -> Result<Uri, String> {
    format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|_| "bad endpoint URL".to_owned())
}

/// At most 300 characters of an answer, for conditions, Events and logs.
fn cut(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}
