//! The LoraAdapter controller: keep the adapter loaded on at least `minReplicas` ready
//! instances of the WorkerPools in its namespace that serve `baseModel` (only those named in
//! `pools`, when set), through the engine's adapter API, and report where it is loaded.
//!
//! Each reconcile asks every candidate instance which adapters it has (`GET /v1/models`),
//! then loads the adapter on the first instances without it (pool, then endpoint order, so
//! replicas of the operator and repeated reconciles pick the same ones) until `minReplicas`
//! have it. An instance that already has it counts whether or not this operator loaded it.
//!
//! A finalizer ([`FINALIZER`]) makes deletion unload the adapter from every instance of its
//! pools (one attempt each: a failure is a Warning Event, never a resource stuck deleting).
//! Not yet: a pool's `apiKey` (the operator holds no worker keys).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use switchyard_k8s::conditions::{self, ConditionUpdate};
use switchyard_k8s::{
    labels, EngineKind, LoraAdapter, LoraAdapterSpec, LoraAdapterStatus, WorkerPool,
};
use tracing::instrument;

use switchyard_runtime::WorkerAuth;

use crate::lora_engine::LoraEngine;
use crate::{Context, Error, Result};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "loraadapter";
/// Held on every LoraAdapter until the operator has unloaded it from the engines.
pub const FINALIZER: &str = "switchyard.dev/unload-adapter";
/// Re-check of a satisfied adapter: engines restart, pools scale, adapters get evicted.
pub const RESYNC: Duration = Duration::from_secs(60);

/// A ready instance the adapter may be loaded on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pool: String,
    /// `http://ip:port`, from the pool's status.
    pub url: String,
    pub engine: EngineKind,
    /// The pool's worker API key (`Err`: it has one the operator cannot read).
    pub auth: Result<Option<WorkerAuth>, String>,
}

impl Target {
    /// How `status.loadedOn` names it: `<pool>/<host:port>`.
    pub fn id(&self) -> String {
        let host = self
            .url
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        format!("{}/{host}", self.pool)
    }
}

/// What one pass over the targets found and did.
#[derive(Debug, Default, PartialEq)]
pub struct Placement {
    /// Targets with the adapter, sorted.
    pub loaded_on: Vec<String>,
    /// One line per failed engine call.
    pub failures: Vec<String>,
}

/// Reconciles one LoraAdapter.
#[instrument(skip(adapter, ctx), fields(namespace = adapter.namespace().unwrap_or_default(), adapter = %adapter.name_any()))]
pub async fn reconcile(adapter: Arc<LoraAdapter>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let namespace = adapter
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = adapter.name_any();
    let finalizers = adapter.finalizers();
    let held = finalizers.iter().any(|f| f == FINALIZER);
    if adapter.metadata.deletion_timestamp.is_some() {
        if held {
            cleanup(&adapter, &ctx, &namespace).await?;
        }
        ctx.backoff.succeeded(&key(&namespace, &name));
        return Ok(Action::await_change());
    }
    if !held {
        let mut with = finalizers.to_vec();
        with.push(FINALIZER.to_owned());
        set_finalizers(&ctx, &namespace, &name, with).await?;
    }
    let pools = list_pools(&ctx, &namespace).await?;
    let targets = targets(&adapter.spec, &pools, ctx.worker_keys_dir.as_deref());
    let placement = place(&ctx.lora, &name, &adapter.spec, &targets).await;
    let min = usize::try_from(adapter.spec.min_replicas).unwrap_or(0);
    let ready = placement.loaded_on.len() >= min;
    let condition = ready_condition(&placement, min, targets.len());
    let existing = adapter.status.clone().unwrap_or_default();
    let status = LoraAdapterStatus {
        ready_replicas: i32::try_from(placement.loaded_on.len()).unwrap_or(i32::MAX),
        loaded_on: placement.loaded_on.clone(),
        conditions: conditions::merge(
            &existing.conditions,
            vec![condition.clone()],
            adapter.metadata.generation,
            Time(Timestamp::now()),
        ),
        observed_generation: adapter.metadata.generation,
    };
    if status != existing {
        let api: Api<LoraAdapter> = Api::namespaced(ctx.client.clone(), &namespace);
        let body = json!({
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "LoraAdapter",
            "status": status,
        });
        let params = PatchParams::apply(labels::FIELD_MANAGER).force();
        api.patch_status(&name, &params, &Patch::Apply(&body))
            .await?;
    }
    if !placement.failures.is_empty() {
        let event = Event {
            type_: EventType::Warning,
            reason: condition.reason.to_owned(),
            note: Some(cut(&placement.failures.join("; "), 1000)),
            action: "LoadAdapter".to_owned(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &adapter.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record the load failure as an Event");
        }
    }
    let key = key(&namespace, &name);
    if ready {
        ctx.backoff.succeeded(&key);
        Ok(Action::requeue(RESYNC))
    } else {
        // Not there yet (no instances, failed loads): try again, backing off.
        Ok(Action::requeue(ctx.backoff.failed(&key)))
    }
}

/// Unloads the adapter from every instance of its pools, then lets the resource go.
async fn cleanup(adapter: &LoraAdapter, ctx: &Context, namespace: &str) -> Result<()> {
    let name = adapter.name_any();
    let mut failures = Vec::new();
    let pools = list_pools(ctx, namespace).await?;
    for target in targets(&adapter.spec, &pools, ctx.worker_keys_dir.as_deref()) {
        let unloaded = match &target.auth {
            Ok(auth) => {
                ctx.lora
                    .unload(&target.url, target.engine, &name, auth.as_ref())
                    .await
            }
            Err(why) => Err(why.clone()),
        };
        match unloaded {
            Ok(()) => tracing::info!(instance = %target.id(), "adapter unloaded"),
            Err(why) => failures.push(format!("{}: {why}", target.id())),
        }
    }
    if !failures.is_empty() {
        let event = Event {
            type_: EventType::Warning,
            reason: "UnloadFailed".to_owned(),
            note: Some(cut(&failures.join("; "), 1000)),
            action: "UnloadAdapter".to_owned(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &adapter.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record the unload failure as an Event");
        }
    }
    let rest = adapter
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ctx, namespace, &name, rest).await
}

async fn list_pools(ctx: &Context, namespace: &str) -> Result<Vec<WorkerPool>> {
    let pools: Api<WorkerPool> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(pools.list(&ListParams::default()).await?.items)
}

/// Replaces the finalizer list (a merge patch: lists are replaced whole).
async fn set_finalizers(
    ctx: &Context,
    namespace: &str,
    name: &str,
    finalizers: Vec<String>,
) -> Result<()> {
    let api: Api<LoraAdapter> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({"metadata": {"finalizers": finalizers}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Retries a failed reconcile with capped exponential backoff.
pub fn error_policy(adapter: Arc<LoraAdapter>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key(
        &adapter.namespace().unwrap_or_default(),
        &adapter.name_any(),
    );
    let delay = ctx.backoff.failed(&key);
    ctx.metrics.error(CONTROLLER, error.metric_label());
    tracing::warn!(adapter = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn key(namespace: &str, name: &str) -> String {
    format!("{CONTROLLER}/{namespace}/{name}")
}

/// The ready instances of the pools (already one namespace's) that serve `spec.baseModel`,
/// restricted to `spec.pools` when it is set, in pool then endpoint order.
pub fn targets(
    spec: &LoraAdapterSpec,
    pools: &[WorkerPool],
    keys_dir: Option<&std::path::Path>,
) -> Vec<Target> {
    let mut out: Vec<Target> = pools
        .iter()
        .filter(|p| p.spec.model == spec.base_model)
        .filter(|p| spec.pools.is_empty() || spec.pools.contains(&p.name_any()))
        .flat_map(|p| {
            let endpoints = p
                .status
                .as_ref()
                .map(|s| s.endpoints.clone())
                .unwrap_or_default();
            let auth = crate::lora_keys::for_pool(keys_dir, p);
            endpoints.into_iter().map(move |url| Target {
                pool: p.name_any(),
                url,
                engine: p.spec.engine,
                auth: auth.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.pool, &a.url).cmp(&(&b.pool, &b.url)));
    out.dedup_by(|a, b| (&a.pool, &a.url) == (&b.pool, &b.url));
    out
}

/// Asks every target whether it has the adapter, then loads it on the first targets without
/// it until `minReplicas` have it.
pub async fn place(
    engine: &LoraEngine,
    name: &str,
    spec: &LoraAdapterSpec,
    targets: &[Target],
) -> Placement {
    let mut placement = Placement::default();
    let mut without = Vec::new();
    for target in targets {
        let auth = match &target.auth {
            Ok(auth) => auth.as_ref(),
            Err(why) => {
                placement.failures.push(format!("{}: {why}", target.id()));
                continue;
            }
        };
        match engine.loaded(&target.url, auth).await {
            Ok(list) if list.iter().any(|a| a == name) => placement.loaded_on.push(target.id()),
            Ok(_) => without.push(target),
            Err(why) => placement.failures.push(format!("{}: {why}", target.id())),
        }
    }
    let min = usize::try_from(spec.min_replicas).unwrap_or(0);
    for target in without {
        if placement.loaded_on.len() >= min {
            break;
        }
        let auth = target.auth.as_ref().ok().and_then(Option::as_ref);
        match engine
            .load(&target.url, target.engine, (name, &spec.source), auth)
            .await
        {
            Ok(()) => {
                tracing::info!(instance = %target.id(), "adapter loaded");
                placement.loaded_on.push(target.id());
            }
            Err(why) => placement.failures.push(format!("{}: {why}", target.id())),
        }
    }
    placement.loaded_on.sort();
    placement
}

/// `Ready`: whether `minReplicas` instances have the adapter, and if not, why.
fn ready_condition(placement: &Placement, min: usize, targets: usize) -> ConditionUpdate {
    let have = placement.loaded_on.len();
    if have >= min {
        return ConditionUpdate::new(
            "Ready",
            true,
            "Loaded",
            format!("loaded on {have} instance(s); minReplicas is {min}"),
        );
    }
    if targets == 0 {
        return ConditionUpdate::new(
            "Ready",
            false,
            "NoInstances",
            "no ready instance of a WorkerPool in this namespace serves baseModel (or the pools listed in spec.pools)",
        );
    }
    if !placement.failures.is_empty() {
        return ConditionUpdate::new(
            "Ready",
            false,
            "LoadFailed",
            cut(
                &format!(
                    "loaded on {have} of {min}: {}",
                    placement.failures.join("; ")
                ),
                1000,
            ),
        );
    }
    ConditionUpdate::new(
        "Ready",
        false,
        "NotEnoughInstances",
        format!("only {targets} ready instance(s) for minReplicas {min}; loaded on {have}"),
    )
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
