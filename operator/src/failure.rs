//! A failed WorkerPool reconcile is visible where users look — `kubectl get wp -o yaml` and
//! `kubectl describe wp` — not only in the operator's log: the condition `Reconciled=False`
//! with a reason naming the step that failed, and a Warning Event on the pool (repeats of the
//! same failure become one Event series).
//!
//! Reporting is best effort: when the API server refuses the status or the Event too, that is
//! logged and the reconcile's own error still drives the backoff.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use switchyard_k8s::conditions::{self, ConditionUpdate};
use switchyard_k8s::labels;
use switchyard_k8s::WorkerPool;

use crate::{Context, Error};

/// Condition type: whether the last reconcile applied everything.
pub const RECONCILED: &str = "Reconciled";
/// Reason of `Reconciled=True`.
pub const APPLIED: &str = "Applied";
/// Longest note an Event carries (the API allows 1 kB).
const MAX_NOTE: usize = 1000;

/// The reconcile step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The spec cannot be built into a Deployment (e.g. a bridge with no NATS URL).
    Spec,
    Deployment,
    Service,
    EndpointSlices,
    Status,
}

impl Step {
    /// The condition's and the Event's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Spec => "InvalidSpec",
            Self::Deployment => "DeploymentApplyFailed",
            Self::Service => "ServiceApplyFailed",
            Self::EndpointSlices => "EndpointSliceListFailed",
            Self::Status => "StatusUpdateFailed",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::Spec => "BuildDeployment",
            Self::Deployment => "ApplyDeployment",
            Self::Service => "ApplyService",
            Self::EndpointSlices => "ListEndpointSlices",
            Self::Status => "UpdateStatus",
        }
    }
}

/// The success condition every applied status carries.
pub fn reconciled() -> ConditionUpdate {
    ConditionUpdate::new(RECONCILED, true, APPLIED, "Deployment and Service applied")
}

/// Records `error` at `step` on the pool: condition (unless writing status is what failed)
/// and Warning Event.
pub async fn report(ctx: &Context, pool: &WorkerPool, step: Step, error: &Error) {
    let note: String = format!("{}: {error}", step.action())
        .chars()
        .take(MAX_NOTE)
        .collect();
    if step != Step::Status {
        if let Err(e) = set_condition(ctx, pool, step, &note).await {
            tracing::warn!(pool = %pool.name_any(), error = %e, "could not record the failure in status");
        }
    }
    let event = Event {
        type_: EventType::Warning,
        reason: step.reason().to_string(),
        note: Some(note),
        action: step.action().to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &pool.object_ref(&())).await {
        tracing::warn!(pool = %pool.name_any(), error = %e, "could not record the failure as an Event");
    }
}

/// Applies the pool's current status with `Reconciled=False` (the rest of the status is kept:
/// a server-side apply drops the fields it omits).
async fn set_condition(
    ctx: &Context,
    pool: &WorkerPool,
    step: Step,
    note: &str,
) -> Result<(), Error> {
    let namespace = pool
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let mut status = pool.status.clone().unwrap_or_default();
    status.conditions = conditions::merge(
        &status.conditions,
        vec![ConditionUpdate::new(RECONCILED, false, step.reason(), note)],
        pool.metadata.generation,
        Time(Timestamp::now()),
    );
    let body = json!({
        "apiVersion": "switchyard.dev/v1alpha1",
        "kind": "WorkerPool",
        "status": status,
    });
    let pools: Api<WorkerPool> = Api::namespaced(ctx.client.clone(), &namespace);
    pools
        .patch_status(
            &pool.name_any(),
            &PatchParams::apply(labels::FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(())
}
