//! The `Conflict` condition: a pool naming a model that another namespace owns is marked, and
//! the condition goes back to `False` once its namespace owns the model.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{reflector, watcher};
use serde_json::Value;
use switchyard_k8s::WorkerPool;

use crate::fixtures::*;
use crate::ownership::CONFLICT;
use crate::workerpool::reconcile;

fn created(mut pool: WorkerPool, secs: i64) -> WorkerPool {
    pool.metadata.creation_timestamp = Some(Time(Timestamp::from_second(secs).expect("timestamp")));
    pool
}

/// A pool named `name` in `namespace`, serving the fixtures' model, created at `secs`.
fn pool_in(name: &str, namespace: &str, secs: i64) -> WorkerPool {
    let mut p = created(pool(name), secs);
    p.metadata.namespace = Some(namespace.to_string());
    p.metadata.uid = Some(format!("uid-{namespace}-{name}"));
    p
}

/// Reconciles `pool` with `others` in the operator's store; returns the written `Conflict`.
async fn conflict_after_reconcile(
    pool: WorkerPool,
    others: Vec<WorkerPool>,
    explicit: &[(&str, &str)],
) -> Value {
    let (mut ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let (store, mut writer) = reflector::store::<WorkerPool>();
    for other in others {
        writer.apply_watcher_event(&watcher::Event::Apply(other));
    }
    let ctx_mut = Arc::get_mut(&mut ctx).expect("fresh context");
    ctx_mut.pool_claims.explicit = explicit
        .iter()
        .map(|(m, ns)| (m.to_string(), ns.to_string()))
        .collect();
    ctx_mut.pool_claims.add(store);
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    reconcile(Arc::new(pool), ctx).await.expect("reconcile");
    let calls = finish(handle).await;
    let conditions = calls[3].body["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .clone();
    conditions
        .into_iter()
        .find(|c| c["type"] == CONFLICT)
        .expect("a Conflict condition")
}

#[tokio::test]
async fn a_later_pool_in_another_namespace_is_in_conflict() {
    let model = pool("x").spec.model;
    let cond = conflict_after_reconcile(
        pool_in("llama", "default", 200),
        vec![pool_in("theirs", "team-a", 100)],
        &[],
    )
    .await;
    assert_eq!(cond["status"], "True", "{cond}");
    assert_eq!(cond["reason"], "ModelClaimedByOtherNamespace");
    assert_eq!(
        cond["message"],
        format!(
            "model {model} belongs to namespace team-a; the frontend does not route to this pool"
        )
    );
}

#[tokio::test]
async fn the_first_claim_and_pools_of_its_namespace_are_not_in_conflict() {
    let cond = conflict_after_reconcile(
        pool_in("llama", "default", 100),
        vec![
            pool_in("later", "team-a", 200),
            pool_in("decode", "default", 300),
        ],
        &[],
    )
    .await;
    assert_eq!(cond["status"], "False", "{cond}");
    assert_eq!(cond["reason"], "ModelOwned");
}

#[tokio::test]
async fn the_allow_list_beats_claim_order() {
    let model = pool("x").spec.model;
    let cond = conflict_after_reconcile(
        pool_in("llama", "default", 1),
        vec![],
        &[(model.as_str(), "team-a")],
    )
    .await;
    assert_eq!(cond["status"], "True", "{cond}");
    assert_eq!(cond["reason"], "ModelAssignedToOtherNamespace");
}
