//! The distributed runtime end to end: real `etcd` and `nats-server` processes, mockers that
//! register themselves (`--etcd`) and publish KV/load events (`--nats`), frontends with
//! `--discovery etcd`, `--nats`, the `kv` policy and replica sync. Every wait is bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::services::{Etcd, Nats};
use switchyard_tests::{frontend, mocker, worker_flags, Proc};

use crate::MODEL;

/// Polls `check` every 50 ms until it returns `Some`, or fails with `what` after `within`.
pub(crate) async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn health(fe: &Proc) -> Value {
    match reqwest::get(format!("{}/health", fe.url())).await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// One non-streamed chat request: (status, serving instance id).
pub(crate) async fn ask(fe: &Proc, content: &str) -> (u16, Option<String>) {
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 2,
    });
    match post_json(&format!("{}/v1/chat/completions", fe.url()), &body, &[]).await {
        Ok((status, h, _)) => (
            status,
            h.get("x-switchyard-instance")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Err(_) => (0, None),
    }
}

/// Instances the frontend currently knows (from `/health`).
pub(crate) async fn instance_count(fe: &Proc) -> u64 {
    health(fe).await["instances"].as_u64().unwrap_or(u64::MAX)
}

async fn registered_mocker(etcd: &Etcd, id: &str, ttl: &str, extra: &[&str]) -> Proc {
    let url = etcd.url();
    let mut args: Vec<&str> = vec![
        "--etcd",
        url.as_str(),
        "--instance-id",
        id,
        "--etcd-ttl",
        ttl,
    ];
    args.extend_from_slice(extra);
    mocker(&args).await.unwrap()
}

pub(crate) async fn etcd_frontend(etcd: &Etcd, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--discovery".to_owned(),
        "etcd".to_owned(),
        "--etcd".to_owned(),
        etcd.url(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    frontend(&args).await.unwrap()
}

#[tokio::test]
async fn mocker_registers_in_etcd_and_sigterm_removes_it_at_once() {
    let etcd = Etcd::start().await.unwrap();
    // A long TTL: if the instance disappears well before it, deregistration did it.
    let m1 = registered_mocker(&etcd, "m1", "30", &[]).await;
    let m2 = registered_mocker(&etcd, "m2", "30", &[]).await;
    let fe = etcd_frontend(&etcd, &[]).await;

    let seen = eventually(
        Duration::from_secs(15),
        "both mockers routed to",
        || async {
            let mut ids = std::collections::HashSet::new();
            for i in 0..6 {
                if let (200, Some(id)) = ask(&fe, &format!("hello {i}")).await {
                    ids.insert(id);
                }
            }
            (ids.len() == 2).then_some(ids)
        },
    )
    .await;
    assert!(seen.contains("m1") && seen.contains("m2"), "{seen:?}");

    let t0 = Instant::now();
    m1.signal(Signal::SIGTERM).unwrap();
    eventually(
        Duration::from_secs(5),
        "m1 removed after SIGTERM",
        || async { (instance_count(&fe).await == 1).then_some(()) },
    )
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "removal took {:?}: the lease expired instead of being revoked",
        t0.elapsed()
    );
    for i in 0..5 {
        let (status, id) = ask(&fe, &format!("after {i}")).await;
        assert_eq!((status, id.as_deref()), (200, Some("m2")));
    }
    drop(m2);
}

#[tokio::test]
async fn sigkilled_mocker_disappears_after_its_lease_ttl() {
    let etcd = Etcd::start().await.unwrap();
    let m1 = registered_mocker(&etcd, "k1", "3", &[]).await;
    let _m2 = registered_mocker(&etcd, "k2", "3", &[]).await;
    let fe = etcd_frontend(&etcd, &[]).await;
    eventually(Duration::from_secs(15), "two instances", || async {
        (instance_count(&fe).await == 2).then_some(())
    })
    .await;
    let t0 = Instant::now();
    m1.signal(Signal::SIGKILL).unwrap();
    // Nobody revokes the lease: the key goes when the 3 s TTL runs out (etcd checks expiry
    // about every 500 ms), not at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(instance_count(&fe).await, 2, "removed before the TTL");
    eventually(Duration::from_secs(15), "k1 expired", || async {
        (instance_count(&fe).await == 1).then_some(())
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    let (status, id) = ask(&fe, "still here").await;
    assert_eq!((status, id.as_deref()), (200, Some("k2")));
}

#[tokio::test]
async fn etcd_loss_keeps_serving_and_resyncs_after_restart() {
    let mut etcd = Etcd::start().await.unwrap();
    let _m1 = registered_mocker(&etcd, "e1", "5", &[]).await;
    let fe = etcd_frontend(&etcd, &[]).await;
    eventually(Duration::from_secs(15), "e1 routable", || async {
        (ask(&fe, "x").await.0 == 200).then_some(())
    })
    .await;

    etcd.kill();
    eventually(
        Duration::from_secs(20),
        "discovery reported disconnected",
        || async { (health(&fe).await["discovery"]["connected"] == json!(false)).then_some(()) },
    )
    .await;
    // Fail-static: the last known set keeps serving.
    for i in 0..5 {
        let (status, id) = ask(&fe, &format!("during outage {i}")).await;
        assert_eq!((status, id.as_deref()), (200, Some("e1")));
    }
    assert_eq!(
        metric(&fe.url(), "switchyard_discovery_connected").await,
        0.0
    );

    etcd.restart().await.unwrap();
    // A mocker registered while etcd was away must appear after the resync.
    let _m2 = registered_mocker(&etcd, "e2", "5", &[]).await;
    eventually(
        Duration::from_secs(30),
        "resync after etcd restart",
        || async {
            let h = health(&fe).await;
            (h["discovery"]["connected"] == json!(true) && h["instances"] == json!(2)).then_some(())
        },
    )
    .await;
    let (status, _) = ask(&fe, "after restart").await;
    assert_eq!(status, 200);
}

/// Sends the prompt `prefix + tail` and returns the instance that served it.
pub(crate) async fn ask_prefixed(fe: &Proc, prefix: &str, tail: &str) -> String {
    let (status, id) = ask(fe, &format!("{prefix} {tail}")).await;
    assert_eq!(status, 200);
    id.unwrap()
}

/// A long shared prefix (~40 KV blocks of 16 tokens × 4 bytes).
pub(crate) fn long_prefix(tag: &str) -> String {
    (0..160)
        .map(|i| format!("{tag}-{i:03} "))
        .collect::<String>()
}

pub(crate) async fn static_mockers(n: usize, extra: &[&str]) -> Vec<Proc> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(mocker(extra).await.unwrap());
    }
    v
}

/// Checks that each prefix keeps going to the instance that served it first.
pub(crate) async fn prefixes_stick(
    fe: &Proc,
    settle: impl Fn() -> Duration,
) -> HashMap<String, String> {
    let mut holders = HashMap::new();
    for tag in ["alpha", "bravo", "charlie", "delta"] {
        let prefix = long_prefix(tag);
        let first = ask_prefixed(fe, &prefix, "turn 0").await;
        tokio::time::sleep(settle()).await;
        for turn in 1..6 {
            let id = ask_prefixed(fe, &prefix, &format!("turn {turn}")).await;
            assert_eq!(id, first, "prefix {tag} turn {turn} left its holder");
        }
        holders.insert(tag.to_owned(), first);
    }
    holders
}

#[tokio::test]
async fn kv_policy_with_nats_routes_repeated_prefixes_to_the_holder() {
    let nats = Nats::start().unwrap();
    let url = nats.url();
    let m = static_mockers(3, &["--nats", url.as_str()]).await;
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", "kv", "--nats", url.as_str()].map(String::from));
    let fe = frontend(&args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;
    // Events take a NATS round trip; give the index a moment after each first turn.
    let holders = prefixes_stick(&fe, || Duration::from_millis(400)).await;
    assert!(
        metric(&fe.url(), "switchyard_kv_event_messages_total").await > 0.0,
        "the frontend applied KV events"
    );
    // Where a new prefix lands is a random tie among idle instances; stickiness is the point.
    assert_eq!(holders.len(), 4);
}

#[tokio::test]
async fn kv_policy_without_nats_uses_the_approximate_index() {
    let m = static_mockers(3, &[]).await;
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", "kv"].map(String::from));
    let fe = frontend(&args).await.unwrap();
    let holders = prefixes_stick(&fe, || Duration::ZERO).await;
    assert_eq!(holders.len(), 4);
    assert_eq!(health(&fe).await["events"], Value::Null);
}

#[tokio::test]
async fn losing_nats_never_fails_requests_and_reconnects() {
    let mut nats = Nats::start().unwrap();
    let url = nats.url();
    let m = static_mockers(2, &["--nats", url.as_str()]).await;
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", "kv", "--nats", url.as_str()].map(String::from));
    let fe = frontend(&args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;

    nats.kill();
    eventually(
        Duration::from_secs(30),
        "event bus reported down",
        || async {
            let h = health(&fe).await;
            (h["events"]["connected"] == json!(false)).then_some(())
        },
    )
    .await;
    assert_eq!(health(&fe).await["events"]["routing"], json!("load-only"));
    assert_eq!(
        metric(&fe.url(), "switchyard_event_bus_connected").await,
        0.0
    );
    let prefix = long_prefix("outage");
    for i in 0..10 {
        let (status, id) = ask(&fe, &format!("{prefix} {i}")).await;
        assert_eq!(status, 200, "request {i} during the NATS outage");
        assert!(id.is_some());
    }

    nats.restart().unwrap();
    eventually(Duration::from_secs(30), "event bus reconnected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;
    let (status, _) = ask(&fe, "after reconnect").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn replica_sync_makes_two_frontends_balance_as_one() {
    let nats = Nats::start().unwrap();
    let url = nats.url();
    // Slow tokens keep the long request in flight for seconds.
    let m = static_mockers(2, &["--itl-ms", "100"]).await;
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", "least-loaded", "--nats", url.as_str()].map(String::from));
    let fe1 = frontend(&args).await.unwrap();
    let fe2 = frontend(&args).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "frontends see each other",
        || async {
            (health(&fe1).await["events"]["peers"] == json!(1)
                && health(&fe2).await["events"]["peers"] == json!(1))
            .then_some(())
        },
    )
    .await;

    // A long request through fe1 occupies one instance for ~6 s.
    let long_url = format!("{}/v1/chat/completions", fe1.url());
    let long = tokio::spawn(async move {
        let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "long"}], "max_tokens": 60});
        post_json(&long_url, &body, &[]).await
    });
    // fe2 learns about it through replica sync (published within ~20–100 ms of the change).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..8 {
        let (status, id) = ask(&fe2, &format!("short {i}")).await;
        assert_eq!(status, 200);
        *counts.entry(id.unwrap()).or_default() += 1;
    }
    let (status, headers, _) = long.await.unwrap().unwrap();
    assert_eq!(status, 200);
    let busy = headers["x-switchyard-instance"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        counts.get(&busy).copied().unwrap_or(0),
        0,
        "fe2 sent short requests to {busy}, which fe1 kept busy: {counts:?}"
    );
}
