//! The RouterPlugin controller: fetch the component, check its sha256 and its world, and say
//! so in `Accepted`/`Validated` conditions that tell the user what to fix.
//!
//! No finalizer: frontends unload a plugin when its resource disappears from their watch, and
//! the operator holds nothing to clean up.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use switchyard_k8s::conditions::{self, ConditionUpdate};
use switchyard_k8s::source::verify;
use switchyard_k8s::{labels, RouterPlugin, RouterPluginSpec, RouterPluginStatus};
use tracing::instrument;

use crate::validator::ValidationError;
use crate::{Context, Error, Result};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "routerplugin";
/// Re-check of a validated plugin (its source may disappear).
pub const RESYNC: Duration = Duration::from_secs(600);
/// Retry of a plugin whose source could not be fetched (the ConfigMap may appear later).
pub const RETRY_FETCH: Duration = Duration::from_secs(30);

/// What one evaluation concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub accepted: ConditionUpdate,
    pub validated: ConditionUpdate,
    pub digest: Option<String>,
    pub size_bytes: Option<i64>,
    pub worlds: Vec<String>,
    pub action: Action,
}

/// Reconciles one RouterPlugin.
#[instrument(skip(plugin, ctx), fields(namespace = plugin.namespace().unwrap_or_default(), plugin = %plugin.name_any()))]
pub async fn reconcile(plugin: Arc<RouterPlugin>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let namespace = plugin
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = plugin.name_any();
    if plugin.metadata.deletion_timestamp.is_some() {
        ctx.backoff.succeeded(&key(&namespace, &name));
        return Ok(Action::await_change());
    }
    let verdict = evaluate(&plugin, &ctx).await?;
    ctx.metrics.plugin_validated(verdict.validated.reason);
    let existing = plugin.status.clone().unwrap_or_default();
    let status = RouterPluginStatus {
        conditions: conditions::merge(
            &existing.conditions,
            vec![verdict.accepted.clone(), verdict.validated.clone()],
            plugin.metadata.generation,
            Time(Timestamp::now()),
        ),
        digest: verdict.digest.clone(),
        size_bytes: verdict.size_bytes,
        worlds: verdict.worlds.clone(),
        observed_generation: plugin.metadata.generation,
        details: existing.details.clone(),
    };
    if status != existing {
        let api: Api<RouterPlugin> = Api::namespaced(ctx.client.clone(), &namespace);
        let body = json!({
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "RouterPlugin",
            "status": status,
        });
        let params = PatchParams::apply(labels::FIELD_MANAGER).force();
        api.patch_status(&name, &params, &Patch::Apply(&body))
            .await?;
    }
    ctx.backoff.succeeded(&key(&namespace, &name));
    Ok(verdict.action)
}

/// Retries a failed reconcile with capped exponential backoff.
pub fn error_policy(plugin: Arc<RouterPlugin>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key(&plugin.namespace().unwrap_or_default(), &plugin.name_any());
    let delay = ctx.backoff.failed(&key);
    ctx.metrics.error(CONTROLLER, error.metric_label());
    tracing::warn!(plugin = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn key(namespace: &str, name: &str) -> String {
    format!("{CONTROLLER}/{namespace}/{name}")
}

/// Checks the spec, fetches the bytes, verifies the digest and the world. API failures other
/// than "not found" are returned as errors (retried with backoff); everything the user can fix
/// becomes a condition.
pub async fn evaluate(plugin: &RouterPlugin, ctx: &Context) -> Result<Verdict> {
    let spec = &plugin.spec;
    if let Err(message) = check_spec(spec) {
        return Ok(rejected("InvalidSource", message));
    }
    let accepted = ConditionUpdate::new(
        conditions::ACCEPTED,
        true,
        "Accepted",
        "spec is well-formed",
    );
    let bytes = match ctx.fetcher.fetch(plugin).await {
        Ok(bytes) => bytes,
        Err(switchyard_k8s::Error::Kube(e)) => return Err(Error::Kube(e)),
        Err(e) => {
            let reason = match &e {
                switchyard_k8s::Error::ConfigMapNotFound { .. } => "ConfigMapNotFound",
                switchyard_k8s::Error::KeyNotFound { .. } => "KeyNotFound",
                switchyard_k8s::Error::TooLarge { .. } => "TooLarge",
                _ => "FetchFailed",
            };
            return Ok(not_validated(
                accepted,
                reason,
                e.to_string(),
                Action::requeue(RETRY_FETCH),
            ));
        }
    };
    let digest = match verify(&bytes, &spec.source.sha256) {
        Ok(d) => d,
        // A URL's bytes are not the plugin author's to see through our status: their digest
        // would tell what an arbitrary URL serves. A ConfigMap is in the plugin's namespace.
        Err(_) if spec.source.url.is_some() => {
            return Ok(not_validated(
                accepted,
                "DigestMismatch",
                "the fetched bytes do not match spec.source.sha256".to_string(),
                Action::requeue(RESYNC),
            ));
        }
        Err(e) => {
            let message = format!(
                "{e}; set spec.source.sha256 to the digest of the component you mean to run"
            );
            return Ok(not_validated(
                accepted,
                "DigestMismatch",
                message,
                Action::requeue(RESYNC),
            ));
        }
    };
    let size = bytes.len();
    // Same generation, same verified digest: the world check cannot change, and compiling
    // again (seconds for Python components) on every resync would be waste.
    if plugin.is_validated() {
        let worlds = plugin
            .status
            .as_ref()
            .map(|s| s.worlds.clone())
            .unwrap_or_default();
        return Ok(validated(spec, digest, size, worlds, accepted));
    }
    let validator = ctx.validator.clone();
    let detected = tokio::task::spawn_blocking(move || validator.detect_kinds(&bytes))
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
    let kinds = match detected {
        Ok(kinds) => kinds,
        Err(ValidationError::Unavailable(m)) => {
            return Ok(not_validated(
                accepted,
                "ValidationUnavailable",
                m,
                Action::requeue(RESYNC),
            ));
        }
        Err(ValidationError::Invalid(m)) => {
            let message = format!("{m}; check it with `switchyard plugin check <file>`");
            return Ok(not_validated(
                accepted,
                "InvalidComponent",
                message,
                Action::await_change(),
            ));
        }
    };
    let worlds: Vec<String> = kinds.iter().map(|k| k.as_str().to_string()).collect();
    if !kinds.contains(&spec.kind) {
        let message = format!(
            "component implements {:?} but spec.kind is {:?}; build it against the {} world or change spec.kind",
            worlds,
            spec.kind.as_str(),
            spec.kind.as_str()
        );
        let mut v = not_validated(accepted, "WrongWorld", message, Action::await_change());
        v.worlds = worlds;
        return Ok(v);
    }
    Ok(validated(spec, digest, size, worlds, accepted))
}

/// What CEL rejects on a current API server, checked again for servers without CEL.
pub fn check_spec(spec: &RouterPluginSpec) -> Result<(), String> {
    let s = &spec.source;
    match (&s.config_map, &s.url) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(
                "exactly one of spec.source.configMap or spec.source.url must be set".to_string(),
            )
        }
        (None, Some(url)) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            return Err(format!(
                "spec.source.url {url:?} must start with https:// or http://"
            ));
        }
        _ => {}
    }
    let hex = s.sha256.len() == 64
        && s.sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(
            "spec.source.sha256 must be 64 lowercase hex characters (`sha256sum plugin.wasm`)"
                .to_string(),
        );
    }
    Ok(())
}

fn rejected(reason: &'static str, message: String) -> Verdict {
    Verdict {
        accepted: ConditionUpdate::new(conditions::ACCEPTED, false, reason, message),
        validated: ConditionUpdate::new(
            conditions::VALIDATED,
            false,
            "NotAccepted",
            "fix the spec first (see Accepted)",
        ),
        digest: None,
        size_bytes: None,
        worlds: Vec::new(),
        action: Action::await_change(),
    }
}

fn not_validated(
    accepted: ConditionUpdate,
    reason: &'static str,
    message: String,
    action: Action,
) -> Verdict {
    Verdict {
        accepted,
        validated: ConditionUpdate::new(conditions::VALIDATED, false, reason, message),
        digest: None,
        size_bytes: None,
        worlds: Vec::new(),
        action,
    }
}

fn validated(
    spec: &RouterPluginSpec,
    digest: String,
    size: usize,
    worlds: Vec<String>,
    accepted: ConditionUpdate,
) -> Verdict {
    Verdict {
        accepted,
        validated: ConditionUpdate::new(
            conditions::VALIDATED,
            true,
            "Validated",
            format!(
                "sha256 matches and the component implements the {} world ({size} bytes)",
                spec.kind.as_str()
            ),
        ),
        digest: Some(format!("sha256:{digest}")),
        size_bytes: i64::try_from(size).ok(),
        worlds,
        action: Action::requeue(RESYNC),
    }
}
