//! Each native policy's distribution over real instances, read from `x-switchyard-instance`.

use std::collections::HashMap;

use switchyard_tests::{frontend, mocker, worker_flags, Proc};

use crate::{spread, MODEL};

async fn three_mockers() -> Vec<Proc> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(mocker(&[]).await.unwrap());
    }
    v
}

async fn frontend_with(policy: &str, mockers: &[Proc]) -> Proc {
    let refs: Vec<&Proc> = mockers.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy".to_owned(), policy.to_owned()]);
    frontend(&args).await.unwrap()
}

#[tokio::test]
async fn round_robin_is_exactly_even() {
    let m = three_mockers().await;
    let fe = frontend_with("round-robin", &m).await;
    let counts = spread(&fe, 30, None).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&c| c == 10), "{counts:?}");
}

#[tokio::test]
async fn random_reaches_every_instance() {
    let m = three_mockers().await;
    let fe = frontend_with("random", &m).await;
    let counts = spread(&fe, 60, None).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    // Expected 20 each; P(any < 5) is negligible.
    assert!(counts.values().all(|&c| c >= 5), "{counts:?}");
}

#[tokio::test]
async fn p2c_and_least_loaded_spread_sequential_load() {
    let m = three_mockers().await;
    for policy in ["p2c", "least-loaded"] {
        let fe = frontend_with(policy, &m).await;
        let counts = spread(&fe, 60, None).await;
        // Sequential requests leave every instance idle: ties must not herd onto one.
        assert_eq!(counts.len(), 3, "{policy}: {counts:?}");
        assert!(counts.values().all(|&c| c >= 5), "{policy}: {counts:?}");
    }
}

#[tokio::test]
async fn session_affinity_sticks_and_sessions_spread() {
    let m = three_mockers().await;
    let fe = frontend_with("session", &m).await;
    let mut homes = HashMap::new();
    for s in 0..12 {
        let key = format!("user-{s}");
        let counts = spread(&fe, 5, Some(&key)).await;
        assert_eq!(counts.len(), 1, "session {key} moved: {counts:?}");
        homes.insert(key, counts.into_keys().next().unwrap());
    }
    let distinct: std::collections::HashSet<_> = homes.values().collect();
    assert!(
        distinct.len() >= 2,
        "12 sessions all on one instance: {homes:?}"
    );
}
