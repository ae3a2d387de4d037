//! KV-aware routing over NATS with real mockers publishing events, a NATS outage, and replica
//! sync between two frontends (including the goodbye on a graceful shutdown).

use std::collections::HashMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::services::Nats;
use switchyard_tests::{frontend, worker_flags, Proc};

use super::{
    ask, ask_prefixed, counter, eventually, health, long_prefix, prefixes_stick, static_mockers,
    Learns,
};
use crate::MODEL;

async fn nats_frontend(m: &[Proc], nats: &Nats, policy: &str) -> Proc {
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", policy, "--nats", &nats.url()].map(String::from));
    let fe = frontend(&args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;
    fe
}

#[tokio::test]
async fn kv_policy_with_nats_routes_repeated_prefixes_to_the_holder() {
    let nats = Nats::start().unwrap();
    let m = static_mockers(3, &["--nats", &nats.url()]).await;
    let fe = nats_frontend(&m, &nats, "kv").await;
    let holders = prefixes_stick(&fe, Learns::FromEvents).await;
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
    let holders = prefixes_stick(&fe, Learns::FromDecisions).await;
    assert_eq!(holders.len(), 4);
    assert_eq!(health(&fe).await["events"], Value::Null);
}

#[tokio::test]
async fn losing_nats_never_fails_requests_and_reconnects() {
    let mut nats = Nats::start().unwrap();
    let m = static_mockers(2, &["--nats", &nats.url()]).await;
    let fe = nats_frontend(&m, &nats, "kv").await;
    // The first load snapshots make the frontend fetch both mockers' (empty) caches.
    eventually(Duration::from_secs(10), "initial dumps", || async {
        (counter(&fe, "switchyard_kv_dumps_applied_total").await >= 2.0).then_some(())
    })
    .await;
    let dumps_before = counter(&fe, "switchyard_kv_dumps_applied_total").await;

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
    assert_eq!(counter(&fe, "switchyard_event_bus_connected").await, 0.0);
    // The mockers cache this prefix while their events are lost.
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
    // Resubscribed and resynced: both mockers are dumped again, and what they cached during
    // the outage (published into the void) is in the index now.
    eventually(
        Duration::from_secs(15),
        "dumps after the reconnect fill the index",
        || async {
            let dumps = counter(&fe, "switchyard_kv_dumps_applied_total").await;
            let blocks = health(&fe).await["events"]["indexed_blocks"]
                .as_u64()
                .unwrap_or(0);
            (dumps >= dumps_before + 2.0 && blocks > 0).then_some(())
        },
    )
    .await;
    // And live events flow again: a new prefix's first turn is indexed and the next turns
    // follow it to its holder.
    let prefix = long_prefix("after");
    let applied = counter(&fe, "switchyard_kv_event_messages_total").await;
    let first = ask_prefixed(&fe, &prefix, "turn 0").await;
    eventually(
        Duration::from_secs(10),
        "the first turn's KV events applied",
        || async {
            (counter(&fe, "switchyard_kv_event_messages_total").await > applied).then_some(())
        },
    )
    .await;
    for turn in 1..6 {
        let id = ask_prefixed(&fe, &prefix, &format!("turn {turn}")).await;
        assert_eq!(id, first, "turn {turn} after the reconnect left the holder");
    }
}

#[tokio::test]
async fn replica_sync_makes_two_frontends_balance_as_one() {
    let nats = Nats::start().unwrap();
    // Slow tokens keep the long request in flight for seconds.
    let m = static_mockers(2, &["--itl-ms", "100"]).await;
    let mut fe1 = nats_frontend(&m, &nats, "least-loaded").await;
    let fe2 = nats_frontend(&m, &nats, "least-loaded").await;
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
    // fe2 learns about it through replica sync (published within ~20–100 ms of the change):
    // it then counts fe1's request among its peers' in-flight requests.
    eventually(
        Duration::from_secs(10),
        "fe2 sees fe1's request",
        || async {
            let text = reqwest::get(format!("{}/metrics", fe2.url()))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let seen: f64 = text
                .lines()
                .filter(|l| l.starts_with("switchyard_instance_peer_in_flight{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            (seen >= 1.0).then_some(())
        },
    )
    .await;
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

    // A graceful shutdown says goodbye: fe2 drops fe1 on its message, not by expiry.
    fe1.signal(Signal::SIGTERM).unwrap();
    assert!(fe1.wait_exit(Duration::from_secs(20)).await.unwrap());
    let fe1_addr = format!("127.0.0.1:{}", fe1.port);
    eventually(Duration::from_secs(10), "fe2 got fe1's goodbye", || async {
        let log = fe2.log_text();
        log.lines()
            .any(|l| l.contains("replica peer left (goodbye)") && l.contains(&fe1_addr))
            .then_some(())
    })
    .await;
    assert_eq!(health(&fe2).await["events"]["peers"], json!(0));
}
