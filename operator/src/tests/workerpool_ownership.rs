//! The operator writes only the children it owns ([`crate::children`]), through the mocked API.

use std::sync::Arc;

use http::Method;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::workerpool::reconcile;

/// A Deployment or Service named like the pool, controlled by `owner_uid` (or by nobody).
fn existing(kind: &str, uid: &str, owner_uid: Option<&str>) -> Value {
    let mut meta = json!({"name": "llama", "namespace": NS, "uid": uid});
    if let Some(owner) = owner_uid {
        meta["ownerReferences"] = json!([{"apiVersion": "switchyard.dev/v1alpha1",
            "kind": "WorkerPool", "name": "llama", "uid": owner, "controller": true}]);
    }
    let api_version = if kind == "Deployment" {
        "apps/v1"
    } else {
        "v1"
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": meta})
}

fn shape(calls: &[Captured]) -> Vec<(Method, String)> {
    calls
        .iter()
        .map(|c| {
            let kind = c.path.split('/').rev().nth(1).unwrap_or_default();
            (c.method.clone(), kind.to_owned())
        })
        .collect()
}

fn pool_uid() -> String {
    pool("llama").metadata.uid.unwrap_or_default()
}

#[tokio::test]
async fn a_fresh_operator_reads_each_child_once_then_writes_with_its_uid() {
    let (ctx, api) = fresh_context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let mut calls = Scenario::pool_first(None, None, deploy_status(1, 1), vec![]);
    calls.extend(Scenario::pool_changed(deploy_status(1, 1), vec![]));
    let handle = api.run(calls);
    let pool = Arc::new(pool("llama"));
    reconcile(Arc::clone(&pool), Arc::clone(&ctx))
        .await
        .unwrap();
    reconcile(pool, ctx).await.unwrap();
    let calls = finish(handle).await;
    let kinds = shape(&calls);
    assert_eq!(
        kinds[..4],
        [
            (Method::GET, "deployments".to_string()),
            (Method::PATCH, "deployments".to_string()),
            (Method::GET, "services".to_string()),
            (Method::PATCH, "services".to_string()),
        ]
    );
    assert!(
        calls[1].body["metadata"]["uid"].is_null(),
        "a create has no precondition"
    );
    // Second reconcile: no reads, and each write carries the uid the API server gave.
    assert_eq!(
        kinds[6..8],
        [
            (Method::PATCH, "deployments".to_string()),
            (Method::PATCH, "services".to_string()),
        ]
    );
    assert_eq!(calls[6].body["metadata"]["uid"], DEPLOYMENT_UID);
    assert_eq!(calls[7].body["metadata"]["uid"], SERVICE_UID);
}

#[tokio::test]
async fn a_deployment_someone_else_controls_is_left_alone_and_the_pool_says_why() {
    for owner in [None, Some("another-owner-uid")] {
        let (ctx, api) = fresh_context(FakeValidator(Ok(vec![])), StaticUrls::default());
        let foreign = existing("Deployment", "foreign-uid", owner);
        let handle = api.run(vec![
            Call::GetDeployment(Some(foreign)),
            Call::PatchPoolStatus,
            Call::CreateEvent,
        ]);
        let err = reconcile(Arc::new(pool("llama")), ctx).await.unwrap_err();
        let calls = finish(handle).await;
        assert!(
            !calls
                .iter()
                .any(|c| c.method == Method::PATCH && c.path.contains("/deployments/")),
            "no write to a Deployment the pool does not control"
        );
        let message = err.to_string();
        assert!(
            message.contains("Deployment default/llama already exists and is not controlled"),
            "{message}"
        );
        let note = calls[2].body["note"].as_str().unwrap_or_default();
        assert!(note.contains("not controlled by this WorkerPool"), "{note}");
    }
}

#[tokio::test]
async fn children_the_pool_already_controls_are_adopted_with_their_uids() {
    let (ctx, api) = fresh_context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let owner = pool_uid();
    let handle = api.run(Scenario::pool_first(
        Some(existing("Deployment", "d-uid", Some(&owner))),
        Some(existing("Service", "s-uid", Some(&owner))),
        deploy_status(1, 1),
        vec![],
    ));
    reconcile(Arc::new(pool("llama")), ctx).await.unwrap();
    let calls = finish(handle).await;
    assert_eq!(calls[1].body["metadata"]["uid"], "d-uid");
    assert_eq!(calls[3].body["metadata"]["uid"], "s-uid");
}

#[tokio::test]
async fn a_refused_write_forgets_the_uid_so_the_next_reconcile_reads_again() {
    // Known children (seeded uids); the Deployment write is refused, as the API server refuses
    // a uid precondition when the object was replaced.
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let mut calls = vec![
        Call::Fail(Method::PATCH, 409),
        Call::PatchPoolStatus,
        Call::CreateEvent,
    ];
    let foreign = existing("Deployment", "replacement-uid", None);
    calls.extend([
        Call::GetDeployment(Some(foreign)),
        Call::PatchPoolStatus,
        // The same reason again: the recorder patches the Event series.
        Call::PatchEvent,
    ]);
    let handle = api.run(calls);
    let pool = Arc::new(pool("llama"));
    assert!(reconcile(Arc::clone(&pool), Arc::clone(&ctx))
        .await
        .is_err());
    let err = reconcile(pool, ctx).await.unwrap_err();
    let calls = finish(handle).await;
    assert_eq!(calls[0].body["metadata"]["uid"], DEPLOYMENT_UID);
    assert_eq!(calls[3].method, Method::GET, "read again after the refusal");
    assert!(err.to_string().contains("not controlled"), "{err}");
    let note = calls[5].body["series"].to_string();
    assert!(
        note.contains("count"),
        "a repeat of the same failure: {note}"
    );
}
