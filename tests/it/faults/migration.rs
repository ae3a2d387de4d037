//! Workers dying or stalling mid-stream: migration splices a continuation in with no lost or
//! duplicated text; without migration the client gets an explicit in-band error.

use std::time::Duration;

use futures_util::future::join_all;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_tests::http::metric;
use switchyard_tests::mocker;

use super::{admin_health, expected_text, frontend_over, id_of, stream, Streamed, ADMIN_TOKEN};
use crate::{chat, MODEL};

const CHAT: &str = "/v1/chat/completions";
const COMPLETIONS: &str = "/v1/completions";

/// A mix of chat and completions streams, each long enough to be cut mid-way.
fn requests(n: usize, tokens: u32) -> Vec<(&'static str, Value)> {
    (0..n)
        .map(|i| {
            if i % 4 == 3 {
                let body = json!({"model": MODEL, "prompt": format!("chapter {i} begins"),
                    "max_tokens": tokens, "stream": true, "seed": i});
                (COMPLETIONS, body)
            } else {
                let mut body = chat(&format!("tell story number {i}"), tokens, true);
                body["seed"] = i.into();
                if i % 4 == 1 {
                    body["stream_options"] = json!({"include_usage": true});
                }
                (CHAT, body)
            }
        })
        .collect()
}

/// Starts every stream, runs `fault` once they are under way, and collects the outcomes.
async fn streams_with_fault(
    base: &str,
    reqs: &[(&'static str, Value)],
    after: Duration,
    fault: impl FnOnce(),
) -> Vec<Streamed> {
    let tasks: Vec<_> = reqs
        .iter()
        .map(|&(path, ref body)| {
            let (base, body) = (base.to_owned(), body.clone());
            tokio::spawn(async move { stream(&base, path, &body).await })
        })
        .collect();
    tokio::time::sleep(after).await;
    fault();
    join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// `usage.completion_tokens` of the stream's usage chunk.
fn completion_tokens(outcome: &Streamed) -> Option<u64> {
    outcome
        .events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|v| v["usage"]["completion_tokens"].as_u64())
}

fn assert_one_chat_stream(outcome: &Streamed) {
    let chunks: Vec<Value> = outcome
        .events
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{chunks:?}"
    );
    let roles = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"].get("role").is_some())
        .count();
    assert_eq!(roles, 1, "the role delta is sent once: {chunks:?}");
    assert!(
        chunks.iter().all(|c| c["id"] == chunks[0]["id"]),
        "one stream id across the splice: {chunks:?}"
    );
}

#[tokio::test]
async fn sigkill_with_migration_every_stream_completes_with_the_exact_text() {
    let reference = mocker(&[]).await.unwrap();
    let victim = mocker(&["--itl-ms", "15"]).await.unwrap();
    let survivor = mocker(&["--itl-ms", "15"]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nmigration_limit: 2\n",
        &[&victim, &survivor],
        &["--policy", "round-robin"],
    )
    .await;
    let reqs = requests(16, 40);
    let expected = join_all(
        reqs.iter()
            .map(|(path, body)| expected_text(&reference, path, body)),
    )
    .await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, Duration::from_millis(250), || {
        victim.signal(Signal::SIGKILL).unwrap();
    })
    .await;
    for (i, (outcome, expected)) in outcomes.iter().zip(&expected).enumerate() {
        assert_eq!(outcome.status, 200, "stream {i}");
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        assert!(outcome.done(), "stream {i} did not end with [DONE]");
        assert_eq!(&outcome.text(), expected, "stream {i}");
        if reqs[i].0 == CHAT {
            assert_one_chat_stream(outcome);
        }
        if reqs[i].1.get("stream_options").is_some() {
            assert_eq!(
                completion_tokens(outcome),
                Some(40),
                "stream {i}: usage of the whole stream"
            );
        }
    }
    let migrations = metric(&fe.url(), "switchyard_stream_migrations_total").await;
    assert!(
        migrations >= 1.0,
        "no stream was migrated: the fault missed"
    );
}

#[tokio::test]
async fn sigkill_without_migration_gives_explicit_errors_never_silent_truncation() {
    let reference = mocker(&[]).await.unwrap();
    let victim = mocker(&["--itl-ms", "15"]).await.unwrap();
    let survivor = mocker(&["--itl-ms", "15"]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\n",
        &[&victim, &survivor],
        &["--policy", "round-robin"],
    )
    .await;
    let reqs = requests(12, 40);
    let expected = join_all(
        reqs.iter()
            .map(|(path, body)| expected_text(&reference, path, body)),
    )
    .await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, Duration::from_millis(250), || {
        victim.signal(Signal::SIGKILL).unwrap();
    })
    .await;
    let mut errors = 0;
    for (i, (outcome, expected)) in outcomes.iter().zip(&expected).enumerate() {
        assert_eq!(outcome.status, 200, "stream {i}");
        assert!(
            outcome.done(),
            "stream {i} ended without [DONE]: {:?}",
            outcome.events
        );
        match outcome.error() {
            Some(error) => {
                errors += 1;
                assert_eq!(error["error"]["code"], "stream_interrupted", "{error}");
                assert!(
                    expected.starts_with(&outcome.text()),
                    "stream {i}: garbled text"
                );
            }
            None => assert_eq!(&outcome.text(), expected, "stream {i} silently truncated"),
        }
    }
    assert!(errors >= 1, "no stream was on the killed worker");
}

#[tokio::test]
async fn a_stalled_stream_is_detected_migrated_and_its_instance_degraded() {
    let reference = mocker(&[]).await.unwrap();
    let staller = mocker(&["--itl-ms", "15"]).await.unwrap();
    let survivor = mocker(&["--itl-ms", "15"]).await.unwrap();
    // A high failure threshold keeps the staller out of ejection, so `degraded` is visible.
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nmigration_limit: 1\nupstream:\n  stall_timeout_ms: 400\nhealth:\n  failure_threshold: 50\n",
        &[&staller, &survivor],
        &["--policy", "round-robin", "--admin-token", ADMIN_TOKEN],
    )
    .await;
    let reqs = requests(8, 40);
    let expected = join_all(
        reqs.iter()
            .map(|(path, body)| expected_text(&reference, path, body)),
    )
    .await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, Duration::from_millis(250), || {
        staller.signal(Signal::SIGSTOP).unwrap();
    })
    .await;
    for (i, (outcome, expected)) in outcomes.iter().zip(&expected).enumerate() {
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        assert!(outcome.done(), "stream {i}");
        assert_eq!(&outcome.text(), expected, "stream {i}");
    }
    assert!(metric(&fe.url(), "switchyard_stream_stalls_total").await >= 1.0);
    assert_eq!(admin_health(&fe, &id_of(&staller)).await, "degraded");
    staller.signal(Signal::SIGCONT).unwrap();
}

#[tokio::test]
async fn a_stream_that_stalls_while_health_stays_200_is_migrated() {
    let reference = mocker(&[]).await.unwrap();
    let staller = mocker(&["--stall-after-tokens", "10"]).await.unwrap();
    let survivor = mocker(&[]).await.unwrap();
    // The active probe runs and keeps passing: only the stall timeout can catch this.
    let fe = frontend_over(
        "probe:\n  interval_ms: 100\nmigration_limit: 1\nupstream:\n  stall_timeout_ms: 300\nhealth:\n  failure_threshold: 50\n",
        &[&staller, &survivor],
        &["--policy", "round-robin", "--admin-token", ADMIN_TOKEN],
    )
    .await;
    let reqs = requests(6, 30);
    let expected = join_all(
        reqs.iter()
            .map(|(path, body)| expected_text(&reference, path, body)),
    )
    .await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, Duration::ZERO, || {}).await;
    for (i, (outcome, expected)) in outcomes.iter().zip(&expected).enumerate() {
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        assert_eq!(&outcome.text(), expected, "stream {i}");
    }
    assert!(metric(&fe.url(), "switchyard_stream_stalls_total").await >= 1.0);
    assert_eq!(admin_health(&fe, &id_of(&staller)).await, "degraded");
}
