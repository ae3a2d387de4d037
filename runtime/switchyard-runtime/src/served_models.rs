//! The served-model check: each worker's own `GET /v1/models`, read now and then, keeps two
//! things honest that discovery only declares.
//!
//! - **The name.** An instance is registered for a model (a `--worker` flag, an etcd spec, a
//!   WorkerPool's `spec.model`), but the engine answers only to the name it serves (vLLM's
//!   `--served-model-name`, default the model path). When they differ every request comes back
//!   as the engine's 404 — to the client, as if *it* had named a missing model. An instance whose
//!   engine lists models but not this one is taken out of routing ([`Instance::routable`]) with
//!   the engine's list in `/admin/instances`, and put back as soon as a later check finds it.
//! - **LoRA residency.** vLLM lists every loaded adapter with `parent` set to its base model;
//!   that list is the authoritative set of adapters the engine holds, including ones loaded by
//!   someone else or at startup (`--lora-modules`), which the metrics-based residency cannot see
//!   until a request uses them.
//!
//! The answer is untrusted: bounded in time and bytes, and any failure (refused, non-2xx, not
//! the OpenAI list shape, an empty list) leaves the last verdict as it was: an engine without the
//! endpoint is never taken out by this check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_protocol::ModelCard;
use tokio::task::JoinHandle;

use crate::client::WorkerClient;
use crate::clock;
use crate::live::Instance;
use crate::registry::Registry;

/// `served_model_check:` in the frontend's YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServedModelsConfig {
    /// How often each instance's model list is read again, milliseconds; 0 turns the check off.
    /// A newly discovered instance is read within `tick_ms`.
    #[serde(rename = "interval", with = "switchyard_protocol::duration::millis")]
    pub interval_ms: u64,
    /// One read slower than this fails (and changes nothing), milliseconds.
    #[serde(rename = "timeout", with = "switchyard_protocol::duration::millis")]
    pub timeout_ms: u64,
    /// Largest `/v1/models` body read, bytes.
    pub max_bytes: usize,
}

impl Default for ServedModelsConfig {
    fn default() -> Self {
        Self {
            interval_ms: 30_000,
            timeout_ms: 2_000,
            max_bytes: 1 << 20,
        }
    }
}

impl ServedModelsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms == 0 {
            return Ok(());
        }
        if self.timeout_ms == 0 {
            return Err("served_model_check.timeout must be greater than 0".into());
        }
        if self.max_bytes < 1024 {
            return Err("served_model_check.max_bytes must be at least 1024".into());
        }
        Ok(())
    }

    /// How often the loop looks for instances due a read: new instances wait at most this long.
    fn tick(&self) -> Duration {
        Duration::from_millis(self.interval_ms.clamp(1, 1_000))
    }
}

/// The OpenAI model list, as much of it as the check reads.
#[derive(Debug, Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
    /// vLLM: the base model of a LoRA adapter entry.
    #[serde(default)]
    parent: Option<String>,
    /// The rest of the engine's card (`created`, `owned_by`, `max_model_len`, …).
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// What one read of `/v1/models` says about one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The engine lists the instance's model.
    pub serves_model: bool,
    /// Every id the engine lists (for the operator's diagnosis), at most [`MAX_LISTED`].
    pub ids: Vec<String>,
    /// Adapters whose parent is the instance's model.
    pub adapters: Vec<String>,
    /// The engine's card for the model, bounded ([`card`]), when it lists the model.
    pub card: Option<ModelCard>,
}

/// Fields of an engine's card passed on, at most; each value at most [`MAX_CARD_VALUE_BYTES`]
/// serialized. A real card has a handful (vLLM: `root`, `max_model_len`, `permission`).
const MAX_CARD_FIELDS: usize = 16;
const MAX_CARD_VALUE_BYTES: usize = 1024;

/// Ids kept for `/admin/instances`: enough to spot the right name, bounded for a hostile list.
pub const MAX_LISTED: usize = 8;
/// Longest id kept, in bytes (cut at a character boundary).
const MAX_ID_BYTES: usize = 256;

/// Reads a `/v1/models` body for an instance of `model`; `None` when it is not an OpenAI model
/// list or the list is empty (nothing to judge by).
pub fn read(body: &[u8], model: &str) -> Option<Served> {
    let list: ModelList = serde_json::from_slice(body).ok()?;
    if list.data.is_empty() {
        return None;
    }
    let listed = list.data.iter().find(|m| m.id == model);
    let serves_model = listed.is_some();
    let card = listed.map(|entry| card(entry, model));
    let adapters = list
        .data
        .iter()
        .filter(|m| m.parent.as_deref() == Some(model) && m.id != model)
        .map(|m| bounded(&m.id))
        .collect();
    let ids = list
        .data
        .iter()
        .take(MAX_LISTED)
        .map(|m| bounded(&m.id))
        .collect();
    Some(Served {
        serves_model,
        ids,
        adapters,
        card,
    })
}

/// The engine's card for `model`, as `/v1/models` passes it on: its `created` and `owned_by`,
/// and up to [`MAX_CARD_FIELDS`] small other fields. The card is the engine's word, so it is
/// bounded like any other answer: an oversized or odd field is dropped, never the card.
fn card(entry: &ModelEntry, model: &str) -> ModelCard {
    let created = entry
        .rest
        .get("created")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let owned_by = entry
        .rest
        .get("owned_by")
        .and_then(Value::as_str)
        .map(bounded)
        .unwrap_or_else(|| "switchyard".to_owned());
    let extra = entry
        .rest
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "id" | "object" | "created" | "owned_by" | "parent"
            )
        })
        .filter(|(k, v)| {
            k.len() <= 64 && serde_json::to_string(v).is_ok_and(|t| t.len() <= MAX_CARD_VALUE_BYTES)
        })
        .take(MAX_CARD_FIELDS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ModelCard {
        id: model.to_owned(),
        object: "model".to_owned(),
        created,
        owned_by,
        parent: None,
        extra,
    }
}

fn bounded(id: &str) -> String {
    let mut end = id.len().min(MAX_ID_BYTES);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id[..end].to_owned()
}

/// Applies a read to the instance: its name verdict and, when the engine lists adapters for
/// the model (or has before), the resident set. `started_ns` is when the read was sent.
pub fn apply(instance: &Instance, served: &Served, started_ns: u64) {
    if served.serves_model {
        if instance.served_mismatch().is_some() {
            tracing::info!(
                instance = instance.id(),
                model = %instance.spec.model,
                "the engine now serves the model; instance back in routing"
            );
        }
        instance.set_served_mismatch(None);
        instance.set_engine_card(served.card.clone());
        instance.adapters.sync_loaded(&served.adapters, started_ns);
    } else {
        if instance.served_mismatch().is_none() {
            tracing::warn!(
                instance = instance.id(),
                model = %instance.spec.model,
                served = ?served.ids,
                "the engine does not serve this model name (check vLLM's --served-model-name or \
                 the worker's model); instance taken out of routing"
            );
        }
        instance.set_served_mismatch(Some(served.ids.clone()));
    }
}

/// Reads every instance's `/v1/models` every `interval_ms` until the task is aborted; `None`
/// when the check is off.
pub fn spawn_checker(
    registry: Arc<Registry>,
    client: WorkerClient,
    config: ServedModelsConfig,
) -> Option<JoinHandle<()>> {
    if config.interval_ms == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        // Per instance: when it was last read (clock ns) and whether a read is in flight.
        let mut tracks: HashMap<u32, (u64, Arc<AtomicBool>)> = HashMap::new();
        let interval_ns = config.interval_ms.saturating_mul(1_000_000);
        let mut tick = tokio::time::interval(config.tick());
        loop {
            tick.tick().await;
            let now = clock::now_ns();
            let instances = registry.all();
            tracks.retain(|id, _| instances.iter().any(|i| i.num_id == *id));
            for instance in instances.iter() {
                let (last, busy) = tracks
                    .entry(instance.num_id)
                    .or_insert_with(|| (0, Arc::new(AtomicBool::new(false))));
                if *last != 0 && now.saturating_sub(*last) < interval_ns {
                    continue;
                }
                if busy.swap(true, Relaxed) {
                    continue;
                }
                *last = now.max(1);
                let (instance, client, config, busy) = (
                    Arc::clone(instance),
                    client.clone(),
                    config.clone(),
                    Arc::clone(busy),
                );
                tokio::spawn(async move {
                    check(&instance, &client, &config, now).await;
                    busy.store(false, Relaxed);
                });
            }
        }
    }))
}

async fn check(
    instance: &Instance,
    client: &WorkerClient,
    config: &ServedModelsConfig,
    started: u64,
) {
    let timeout = Duration::from_millis(config.timeout_ms);
    let Ok(Some(body)) = tokio::time::timeout(timeout, fetch(instance, client, config)).await
    else {
        return;
    };
    if let Some(served) = read(&body, &instance.spec.model) {
        apply(instance, &served, started);
    }
}

async fn fetch(
    instance: &Instance,
    client: &WorkerClient,
    config: &ServedModelsConfig,
) -> Option<bytes::Bytes> {
    let url = format!("{}/v1/models", instance.spec.url.trim_end_matches('/'));
    let uri: Uri = url.parse().ok()?;
    let response = client.get(uri, instance.spec.auth_header()).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let limited = Limited::new(response.into_body(), config.max_bytes);
    limited.collect().await.ok().map(|c| c.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceSpec;

    fn instance(model: &str) -> Instance {
        Instance::new(InstanceSpec::new("w1", model, "http://w1"), None)
    }

    #[test]
    fn a_list_without_the_model_takes_the_instance_out_until_it_appears() {
        let i = instance("llama-3-8b");
        assert!(i.routable(1));
        let wrong =
            br#"{"object":"list","data":[{"id":"meta-llama/Llama-3.1-8B","object":"model"}]}"#;
        let served = read(wrong, "llama-3-8b").unwrap_or_else(|| panic!("a list"));
        assert!(!served.serves_model);
        apply(&i, &served, 1);
        assert!(
            !i.routable(1),
            "an engine serving another name is not routable"
        );
        assert_eq!(
            i.served_mismatch(),
            Some(vec!["meta-llama/Llama-3.1-8B".to_string()])
        );
        let right = br#"{"data":[{"id":"llama-3-8b"}]}"#;
        let served = read(right, "llama-3-8b").unwrap_or_else(|| panic!("a list"));
        apply(&i, &served, 2);
        assert!(i.routable(2));
        assert_eq!(i.served_mismatch(), None);
    }

    #[test]
    fn answers_that_are_not_a_model_list_change_nothing() {
        for body in [
            &b"404 page not found"[..],
            br#"{"data":[]}"#,
            br#"{"models":["x"]}"#,
            br#"{"data":[{"name":"x"}]}"#,
        ] {
            assert_eq!(read(body, "m"), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn adapters_listed_with_the_model_as_parent_become_the_resident_set() {
        let i = instance("base");
        i.adapters.touch("stale", 5);
        let body = br#"{"data":[
            {"id":"base","root":"/models/base"},
            {"id":"sql-lora","root":"/loras/sql","parent":"base"},
            {"id":"other-lora","parent":"another-base"}]}"#;
        let served = read(body, "base").unwrap_or_else(|| panic!("a list"));
        assert_eq!(served.adapters, ["sql-lora"]);
        apply(&i, &served, 10);
        assert_eq!(
            i.adapters.names(),
            ["sql-lora"],
            "stale was unloaded elsewhere"
        );
    }

    #[test]
    fn hostile_lists_are_bounded() {
        let long = "é".repeat(400);
        let many: Vec<String> = (0..100)
            .map(|n| format!(r#"{{"id":"{long}{n}"}}"#))
            .collect();
        let body = format!(r#"{{"data":[{}]}}"#, many.join(","));
        let served = read(body.as_bytes(), "m").unwrap_or_else(|| panic!("a list"));
        assert_eq!(served.ids.len(), MAX_LISTED);
        assert!(served.ids.iter().all(|id| id.len() <= MAX_ID_BYTES));
    }

    #[test]
    fn validation_names_the_key() {
        assert!(ServedModelsConfig::default().validate().is_ok());
        let bad = ServedModelsConfig {
            timeout_ms: 0,
            ..ServedModelsConfig::default()
        };
        let err = bad.validate().err().unwrap_or_default();
        assert!(err.contains("served_model_check.timeout"), "{err}");
    }

    #[test]
    fn the_engines_card_is_kept_bounded_and_under_the_frontends_name() {
        let big = "x".repeat(MAX_CARD_VALUE_BYTES + 1);
        let body = format!(
            r#"{{"data":[{{"id":"base","object":"model","created":1733000000,"owned_by":"vllm",
            "root":"/models/base","parent":null,"max_model_len":8192,"blob":"{big}"}}]}}"#
        );
        let served = read(body.as_bytes(), "base").unwrap_or_else(|| panic!("a list"));
        let card = served.card.clone().unwrap_or_else(|| panic!("a card"));
        assert_eq!((card.created, card.owned_by.as_str()), (1733000000, "vllm"));
        assert_eq!(card.extra.get("max_model_len"), Some(&Value::from(8192)));
        assert_eq!(card.extra.get("root"), Some(&Value::from("/models/base")));
        assert!(
            !card.extra.contains_key("blob"),
            "oversized fields are dropped"
        );
        assert!(!card.extra.contains_key("parent"));
        let i = instance("base");
        assert!(i.engine_card().is_none());
        apply(&i, &served, 1);
        assert_eq!(i.engine_card().map(|c| c.extra.len()), Some(2));
        let wrong =
            read(br#"{"data":[{"id":"other"}]}"#, "base").unwrap_or_else(|| panic!("a list"));
        assert_eq!(wrong.card, None);
    }
}
