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

/// Opens a long stream through `fe` and returns it (still in flight) with its instance.
async fn hold_stream(fe: &Proc) -> (reqwest::Response, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&crate::chat("hold", 1000, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-switchyard-instance"]
        .to_str()
        .unwrap()
        .to_owned();
    (r, id)
}

#[tokio::test]
async fn load_aware_policies_prefer_the_idle_instance() {
    let mut m = Vec::new();
    for _ in 0..3 {
        // Long streams last ~20 s; one-token requests finish at once.
        m.push(mocker(&["--itl-ms", "20"]).await.unwrap());
    }
    for (policy, requests, min_idle_share) in [("least-loaded", 30, 1.0), ("p2c", 90, 0.5)] {
        let fe = frontend_with(policy, &m).await;
        let (first, busy_a) = hold_stream(&fe).await;
        let (second, busy_b) = hold_stream(&fe).await;
        assert_ne!(
            busy_a, busy_b,
            "{policy}: the second stream joined the first"
        );
        let mut counts = HashMap::new();
        for i in 0..requests {
            let (status, h, _) = switchyard_tests::http::post_json(
                &format!("{}/v1/chat/completions", fe.url()),
                &crate::chat(&format!("short {i}"), 1, false),
                &[],
            )
            .await
            .unwrap();
            assert_eq!(status, 200);
            let id = h["x-switchyard-instance"].to_str().unwrap().to_owned();
            *counts.entry(id).or_insert(0usize) += 1;
        }
        let busy =
            counts.get(&busy_a).copied().unwrap_or(0) + counts.get(&busy_b).copied().unwrap_or(0);
        let idle = requests - busy;
        // Load-blind choice would send the idle instance a third; p2c sees it in 2/3 of its
        // samples (expected 60 of 90; P(below 45) ≈ 0.05 %), least-loaded always picks it.
        assert!(
            idle as f64 >= min_idle_share * requests as f64,
            "{policy}: the idle instance got {idle} of {requests}: {counts:?}"
        );
        drop((first, second));
    }
}
