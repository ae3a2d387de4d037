//! The WorkerPool controller: apply the Deployment and Service, then report status.
//!
//! No finalizer: everything the pool creates carries an owner reference, so the garbage
//! collector removes it; the operator keeps no external state to clean up.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use switchyard_k8s::conditions::{self, ConditionUpdate};
use switchyard_k8s::instances::InstanceIndex;
use switchyard_k8s::labels;
use switchyard_k8s::{WorkerPool, WorkerPoolStatus};
use tracing::instrument;

use crate::failure::{self, Step};
use crate::{manifests, Context, Error, Result};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "workerpool";
/// Periodic resync of a healthy pool.
pub const RESYNC: Duration = Duration::from_secs(300);

const DEPLOYMENT: &str = "Deployment";
const SERVICE: &str = "Service";

/// Reconciles one WorkerPool; a failure is also recorded on the pool ([`failure::report`]).
#[instrument(skip(pool, ctx), fields(namespace = pool.namespace().unwrap_or_default(), pool = %pool.name_any()))]
pub async fn reconcile(pool: Arc<WorkerPool>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let namespace = pool
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = pool.name_any();
    if pool.metadata.deletion_timestamp.is_some() {
        // Owned children go with the garbage collector; re-applying them now would fight it.
        ctx.backoff.succeeded(&key(&namespace, &name));
        ctx.children.forget(DEPLOYMENT, &namespace, &name);
        ctx.children.forget(SERVICE, &namespace, &name);
        return Ok(Action::await_change());
    }
    match apply(&pool, &ctx, &namespace, &name).await {
        Ok(()) => {
            ctx.backoff.succeeded(&key(&namespace, &name));
            Ok(Action::requeue(RESYNC))
        }
        Err((step, error)) => {
            failure::report(&ctx, &pool, step, &error).await;
            Err(error)
        }
    }
}

/// Applies the children and the status; an error names the step it happened at.
async fn apply(
    pool: &WorkerPool,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(), (Step, Error)> {
    let params = PatchParams::apply(labels::FIELD_MANAGER).force();
    let at = |step: Step| move |e: kube::Error| (step, Error::from(e));
    let pool_uid = pool
        .uid()
        .ok_or((Step::Spec, Error::MissingField("metadata.uid")))?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let mut body =
        manifests::deployment(pool, &ctx.worker_defaults).map_err(|e| (Step::Spec, e))?;
    body.metadata.uid = ctx
        .children
        .claim(&deployments, DEPLOYMENT, namespace, name, &pool_uid)
        .await
        .map_err(|e| (Step::Deployment, e))?;
    let deployment = deployments
        .patch(name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| {
            ctx.children.forget(DEPLOYMENT, namespace, name);
            at(Step::Deployment)(e)
        })?;
    ctx.children
        .applied(DEPLOYMENT, namespace, name, deployment.uid());
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let mut body = manifests::service(pool).map_err(|e| (Step::Service, e))?;
    body.metadata.uid = ctx
        .children
        .claim(&services, SERVICE, namespace, name, &pool_uid)
        .await
        .map_err(|e| (Step::Service, e))?;
    let service = services
        .patch(name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| {
            ctx.children.forget(SERVICE, namespace, name);
            at(Step::Service)(e)
        })?;
    ctx.children
        .applied(SERVICE, namespace, name, service.uid());
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = slices
        .list(&ListParams::default().labels(&format!("{}={name}", labels::SERVICE_NAME)))
        .await
        .map_err(at(Step::EndpointSlices))?;
    let conflict = ctx.pool_claims.condition(pool);
    let status = status(pool, &deployment, listed.items, conflict, now());
    if pool.status.as_ref() != Some(&status) {
        let pools: Api<WorkerPool> = Api::namespaced(ctx.client.clone(), namespace);
        let body = json!({
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "WorkerPool",
            "status": status,
        });
        pools
            .patch_status(name, &params, &Patch::Apply(&body))
            .await
            .map_err(at(Step::Status))?;
    }
    Ok(())
}

/// Retries a failed reconcile with capped exponential backoff.
pub fn error_policy(pool: Arc<WorkerPool>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key(&pool.namespace().unwrap_or_default(), &pool.name_any());
    let delay = ctx.backoff.failed(&key);
    ctx.metrics.error(CONTROLLER, error.metric_label());
    tracing::warn!(pool = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn key(namespace: &str, name: &str) -> String {
    format!("{CONTROLLER}/{namespace}/{name}")
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// The status a pool should have, given its Deployment, EndpointSlices and its `Conflict`
/// condition ([`crate::ownership`]).
pub fn status(
    pool: &WorkerPool,
    deployment: &Deployment,
    slices: Vec<EndpointSlice>,
    conflict: ConditionUpdate,
    now: Time,
) -> WorkerPoolStatus {
    let ds = deployment.status.clone().unwrap_or_default();
    let desired = pool.spec.replicas;
    let replicas = ds.replicas.unwrap_or(0);
    let ready = ds.ready_replicas.unwrap_or(0);
    let updated = ds.updated_replicas.unwrap_or(0);
    let rolled = deployment.metadata.generation.is_some()
        && ds.observed_generation >= deployment.metadata.generation;

    let mut index = InstanceIndex::default();
    index.pools.insert(
        (pool.namespace().unwrap_or_default(), pool.name_any()),
        pool.spec.clone(),
    );
    for slice in slices {
        index.upsert_slice(slice);
    }
    let endpoints: Vec<String> = index.instances().into_values().map(|i| i.url).collect();

    let selector = manifests::selector_string(pool);
    let available = if desired == 0 {
        ConditionUpdate::new(
            conditions::AVAILABLE,
            false,
            "ScaledToZero",
            "spec.replicas is 0",
        )
    } else if ready > 0 {
        ConditionUpdate::new(
            conditions::AVAILABLE,
            true,
            "MinimumReplicasAvailable",
            format!("{ready} of {desired} workers ready"),
        )
    } else {
        ConditionUpdate::new(
            conditions::AVAILABLE,
            false,
            "NoReadyReplicas",
            format!("0 of {desired} workers ready; see `kubectl describe pods -l {selector}`"),
        )
    };
    let done = rolled && updated == desired && ready == desired && replicas == desired;
    let progressing = if done {
        ConditionUpdate::new(
            conditions::PROGRESSING,
            false,
            "RolloutComplete",
            format!("{desired} workers up to date and ready"),
        )
    } else {
        ConditionUpdate::new(
            conditions::PROGRESSING,
            true,
            "RollingOut",
            format!("{updated} updated, {ready} ready, {desired} desired"),
        )
    };
    let existing = pool
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    WorkerPoolStatus {
        replicas,
        ready_replicas: ready,
        selector,
        endpoints,
        conditions: conditions::merge(
            existing,
            vec![available, progressing, conflict, failure::reconciled()],
            pool.metadata.generation,
            now,
        ),
        observed_generation: pool.metadata.generation,
    }
}
