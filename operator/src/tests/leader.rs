use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::fixtures::*;
use crate::leader::{LeaderElector, LeaseConfig};

fn elector(identity: &str) -> (LeaderElector, ApiServerVerifier) {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let config = LeaseConfig {
        identity: identity.to_string(),
        lease_duration: Duration::from_secs(15),
        ..LeaseConfig::default()
    };
    (LeaderElector::new(ctx.client.clone(), config), api)
}

fn lease(holder: &str, renewed: &str) -> serde_json::Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "switchyard-operator", "namespace": "default", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": renewed, "renewTime": renewed, "leaseTransitions": 3}})
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn creates_a_missing_lease() {
    let (e, api) = elector("op-a");
    let handle = api.run(vec![Call::GetLease(None), Call::CreateLease]);
    assert!(e
        .try_acquire_or_renew(at("2026-01-01T00:00:00Z"))
        .await
        .unwrap());
    let calls = finish(handle).await;
    assert_eq!(calls[1].body["spec"]["holderIdentity"], "op-a");
    assert_eq!(calls[1].body["spec"]["leaseTransitions"], 0);
}

#[tokio::test]
async fn holder_renews_with_optimistic_concurrency() {
    let (e, api) = elector("op-a");
    let handle = api.run(vec![
        Call::GetLease(Some(lease("op-a", "2026-01-01T00:00:00Z"))),
        Call::ReplaceLease(200),
    ]);
    assert!(e
        .try_acquire_or_renew(at("2026-01-01T00:00:05Z"))
        .await
        .unwrap());
    let calls = finish(handle).await;
    assert_eq!(calls[1].body["metadata"]["resourceVersion"], "7");
    assert_eq!(
        calls[1].body["spec"]["renewTime"],
        "2026-01-01T00:00:05.000000Z"
    );
    assert_eq!(calls[1].body["spec"]["leaseTransitions"], 3);
}

#[tokio::test]
async fn live_lease_of_another_holder_is_respected() {
    let (e, api) = elector("op-b");
    let handle = api.run(vec![Call::GetLease(Some(lease(
        "op-a",
        "2026-01-01T00:00:00Z",
    )))]);
    assert!(!e
        .try_acquire_or_renew(at("2026-01-01T00:00:10Z"))
        .await
        .unwrap());
    assert_eq!(
        finish(handle).await.len(),
        1,
        "no write while the lease is live"
    );
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_races_are_lost_cleanly() {
    let (e, api) = elector("op-b");
    let handle = api.run(vec![
        Call::GetLease(Some(lease("op-a", "2026-01-01T00:00:00Z"))),
        Call::ReplaceLease(200),
    ]);
    assert!(e
        .try_acquire_or_renew(at("2026-01-01T00:00:16Z"))
        .await
        .unwrap());
    let calls = finish(handle).await;
    assert_eq!(calls[1].body["spec"]["holderIdentity"], "op-b");
    assert_eq!(calls[1].body["spec"]["leaseTransitions"], 4);

    let (e, api) = elector("op-c");
    let handle = api.run(vec![
        Call::GetLease(Some(lease("op-a", "2026-01-01T00:00:00Z"))),
        Call::ReplaceLease(409),
    ]);
    assert!(!e
        .try_acquire_or_renew(at("2026-01-01T00:00:16Z"))
        .await
        .unwrap());
    finish(handle).await;
}
