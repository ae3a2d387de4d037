//! Hostile and malformed messages on a real nats-server: dropped and counted by reason, while
//! good messages beside them still apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use switchyard_kv::SharedKvIndex;
use switchyard_nats::{connect, subjects, LoadSnapshot, Subscriber, SubscriberConfig};

use support::{eventually, Nats};

const SETTLE: Duration = Duration::from_secs(20);

fn rejected(sub: &Subscriber, reason: &str) -> u64 {
    sub.stats()
        .rejected
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_dropped_by_reason_and_good_ones_still_apply() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let nats = Nats::start().unwrap();
    let (attacker, frontend) = (
        connect(&nats.url(), "attacker").await.unwrap(),
        connect(&nats.url(), "frontend").await.unwrap(),
    );
    eventually(SETTLE, "connections", || {
        attacker.is_connected() && frontend.is_connected()
    })
    .await;
    let sub = Subscriber::start(&frontend, SharedKvIndex::new(), SubscriberConfig::default())
        .await
        .unwrap();
    let publish = |subject: String, payload: String| {
        let client = attacker.client.clone();
        async move { client.publish(subject, payload.into()).await.unwrap() }
    };
    let good = r#"{"instance":"w1","running":3,"waiting":1,"kv_usage":0.25}"#.to_owned();
    // Core NATS drops what arrives before the subscription is registered: publish a good
    // load snapshot until one gets through. Each publish is awaited in order on the one
    // connection, so none can overtake the messages below.
    let deadline = std::time::Instant::now() + SETTLE;
    while sub.load("w1").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "subscription never live"
        );
        publish(subjects::load("w1"), good.clone()).await;
        attacker.client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // w2 claims to be w1 (wrong subject), an infinite kv_usage, garbage, an empty id.
    publish(
        subjects::load("w2"),
        r#"{"instance":"w1","running":999,"waiting":999,"kv_usage":1.0}"#.into(),
    )
    .await;
    publish(
        subjects::load("w1"),
        r#"{"instance":"w1","running":1,"waiting":0,"kv_usage":1e39}"#.into(),
    )
    .await;
    publish(subjects::kv("w1"), "{\"instance\":".into()).await;
    publish(
        subjects::kv(""),
        r#"{"instance":"","epoch":1,"seq":1,"events":[]}"#.into(),
    )
    .await;
    // A good message after them: once it is seen, the earlier ones have been processed.
    publish(
        subjects::load("w1"),
        r#"{"instance":"w1","running":7,"waiting":0,"kv_usage":0.5}"#.into(),
    )
    .await;
    eventually(SETTLE, "the last good snapshot", || {
        sub.load("w1").map(|l| l.running) == Some(7)
    })
    .await;
    assert_eq!(rejected(&sub, "subject"), 1);
    assert_eq!(rejected(&sub, "value"), 1);
    assert_eq!(rejected(&sub, "parse"), 1);
    assert_eq!(rejected(&sub, "instance"), 1);
    assert_eq!(
        sub.load("w1"),
        Some(LoadSnapshot {
            running: 7,
            waiting: 0,
            kv_usage: 0.5
        })
    );
}
