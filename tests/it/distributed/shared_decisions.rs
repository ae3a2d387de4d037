//! Replica-shared routing decisions (`kv.share_decisions`): two frontends on one NATS, four
//! mockers that publish no KV events. A prefix routed by one frontend is routed to the same
//! instance by the other, because the first one's decision reached the second's index. Hostile
//! messages on the decisions subject are rejected and counted, never applied.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_nats::decisions::{Decision, DecisionsMessage};
use switchyard_nats::subjects;
use switchyard_tests::services::Nats;
use switchyard_tests::{frontend, worker_flags, Proc};

use super::{ask_prefixed, eventually, health, long_prefix, static_mockers};
use crate::MODEL;

async fn nats_frontend(m: &[Proc], nats: &Nats) -> Proc {
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", "kv", "--nats", &nats.url()].map(String::from));
    let fe = frontend(&args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;
    fe
}

async fn shared(fe: &Proc) -> Value {
    health(fe).await["events"]["shared_decisions"].clone()
}

/// Waits until `fe` has applied at least `n` peer decisions.
async fn applied_at_least(fe: &Proc, n: u64) {
    eventually(
        Duration::from_secs(10),
        "peer decisions applied",
        || async { (shared(fe).await["applied"].as_u64().unwrap_or(0) >= n).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_prefix_routed_by_one_frontend_goes_to_the_same_instance_from_the_other() {
    let nats = Nats::start().unwrap();
    let m = static_mockers(4, &[]).await;
    let fe1 = nats_frontend(&m, &nats).await;
    let fe2 = nats_frontend(&m, &nats).await;
    // Six prefixes placed by fe1, each asked next through fe2: by chance (no shared
    // decisions, four idle instances) all six would agree with probability 1/4096.
    for (k, tag) in ["ash", "birch", "cedar", "dogwood", "elm", "fir"]
        .into_iter()
        .enumerate()
    {
        let prefix = long_prefix(tag);
        let first = ask_prefixed(&fe1, &prefix, "turn 0").await;
        applied_at_least(&fe2, k as u64 + 1).await;
        let second = ask_prefixed(&fe2, &prefix, "turn 1").await;
        assert_eq!(
            second, first,
            "prefix {tag}: fe2 did not follow fe1's placement"
        );
    }
    // And the other way round: fe1 learned fe2's decisions too.
    applied_at_least(&fe1, 6).await;
    let s = shared(&fe1).await;
    assert!(s["published"].as_u64().unwrap_or(0) >= 6, "{s}");
    assert_eq!(s["unknown_instance"], json!(0), "{s}");
}

#[tokio::test]
async fn hostile_decision_messages_are_rejected_or_ignored_and_counted() {
    let nats = Nats::start().unwrap();
    let m = static_mockers(2, &[]).await;
    let fe = nats_frontend(&m, &nats).await;
    let conn = switchyard_nats::connect(&nats.url(), "intruder")
        .await
        .unwrap();
    let send = |subject: String, payload: Vec<u8>| {
        let client = conn.client.clone();
        async move {
            client.publish(subject, payload.into()).await.unwrap();
            client.flush().await.unwrap();
        }
    };
    // Not JSON; speaking for another frontend; an instance nobody lists.
    send(subjects::decisions("x"), b"{".to_vec()).await;
    let spoof = DecisionsMessage {
        frontend: "someone-else".into(),
        decisions: vec![],
    };
    send(
        subjects::decisions("x"),
        serde_json::to_vec(&spoof).unwrap(),
    )
    .await;
    let ghost = DecisionsMessage {
        frontend: "x".into(),
        decisions: vec![Decision {
            instance: "ghost:1".into(),
            blocks: vec![1, 2, 3],
        }],
    };
    send(
        subjects::decisions("x"),
        serde_json::to_vec(&ghost).unwrap(),
    )
    .await;
    let s = eventually(Duration::from_secs(10), "all three counted", || async {
        let s = shared(&fe).await;
        (s["rejected"]["parse"] == json!(1)
            && s["rejected"]["subject"] == json!(1)
            && s["unknown_instance"] == json!(1))
        .then_some(s)
    })
    .await;
    assert_eq!(s["applied"], json!(0), "{s}");
    let series = r#"switchyard_kv_shared_decisions_total{outcome="unknown_instance"}"#;
    assert_eq!(
        super::counter(&fe, series).await,
        1.0,
        "the metric counts it too"
    );
}
