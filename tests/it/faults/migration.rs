//! Workers dying, stalling (also behind keep-alive comments) or reporting an in-band error
//! mid-stream: migration splices a continuation in with no lost or duplicated text; without
//! migration the client gets an explicit in-band error.

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

/// The text a healthy worker (`reference`) gives for each request.
async fn expected_texts(
    reference: &switchyard_tests::Proc,
    reqs: &[(&'static str, Value)],
) -> Vec<String> {
    join_all(
        reqs.iter()
            .map(|(path, body)| expected_text(reference, path, body)),
    )
    .await
}

/// Starts every stream, runs `fault` once they are all under way (the frontend has seen each
/// one's first token), and collects the outcomes.
async fn streams_with_fault(
    base: &str,
    reqs: &[(&'static str, Value)],
    fault: impl FnOnce(),
) -> Vec<Streamed> {
    let tasks: Vec<_> = reqs
        .iter()
        .map(|&(path, ref body)| {
            let (base, body) = (base.to_owned(), body.clone());
            tokio::spawn(async move { stream(&base, path, &body).await })
        })
        .collect();
    let all = reqs.len() as f64;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first_tokens(base).await < all {
        assert!(
            std::time::Instant::now() < deadline,
            "the streams never all had their first token"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fault();
    join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Streams (of every route) whose first token the frontend has relayed: the count of its
/// time-to-first-token histogram.
async fn first_tokens(base: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("{base}/metrics")).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("switchyard_time_to_first_token_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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
    let expected = expected_texts(&reference, &reqs).await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, || {
        victim.signal(Signal::SIGKILL).unwrap();
    })
    .await;
    assert_all_exact(&outcomes, &expected);
    for (i, outcome) in outcomes.iter().enumerate() {
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
    let expected = expected_texts(&reference, &reqs).await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, || {
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
    let expected = expected_texts(&reference, &reqs).await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, || {
        staller.signal(Signal::SIGSTOP).unwrap();
    })
    .await;
    assert_all_exact(&outcomes, &expected);
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
    let expected = expected_texts(&reference, &reqs).await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, || {}).await;
    assert_all_exact(&outcomes, &expected);
    assert!(metric(&fe.url(), "switchyard_stream_stalls_total").await >= 1.0);
    assert_eq!(admin_health(&fe, &id_of(&staller)).await, "degraded");
}

/// Every stream answered 200, ended with `[DONE]`, carried no error and exactly the text a
/// healthy worker gives.
fn assert_all_exact(outcomes: &[Streamed], expected: &[String]) {
    for (i, (outcome, expected)) in outcomes.iter().zip(expected).enumerate() {
        assert_eq!(outcome.status, 200, "stream {i}");
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        assert!(outcome.done(), "stream {i} did not end with [DONE]");
        assert_eq!(&outcome.text(), expected, "stream {i}");
    }
}

#[tokio::test]
async fn a_stall_behind_keepalive_comments_is_still_detected_and_migrated() {
    let reference = mocker(&[]).await.unwrap();
    // Stalled streams keep sending `: keep-alive` every 50 ms, well inside the stall timeout:
    // only data events may reset the stall clock.
    let staller = mocker(&["--stall-after-tokens", "10", "--stall-keepalive-ms", "50"])
        .await
        .unwrap();
    let survivor = mocker(&[]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nmigration_limit: 1\nupstream:\n  stall_timeout_ms: 300\nhealth:\n  failure_threshold: 50\n",
        &[&staller, &survivor],
        &["--policy", "round-robin", "--admin-token", ADMIN_TOKEN],
    )
    .await;
    let reqs = requests(6, 30);
    let expected = expected_texts(&reference, &reqs).await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, || {}).await;
    assert_all_exact(&outcomes, &expected);
    assert!(metric(&fe.url(), "switchyard_stream_stalls_total").await >= 1.0);
    assert!(metric(&fe.url(), "switchyard_stream_migrations_total").await >= 1.0);
    assert_eq!(admin_health(&fe, &id_of(&staller)).await, "degraded");
}

#[tokio::test]
async fn an_error_event_mid_stream_is_migrated_with_the_exact_text() {
    let reference = mocker(&[]).await.unwrap();
    let broken = mocker(&["--error-after-tokens", "10"]).await.unwrap();
    let survivor = mocker(&[]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nmigration_limit: 1\nhealth:\n  failure_threshold: 1\n  eject_base_ms: 60000\n  eject_max_ms: 60000\n",
        &[&broken, &survivor],
        &["--policy", "round-robin", "--admin-token", ADMIN_TOKEN],
    )
    .await;
    let reqs = requests(8, 30);
    let expected = expected_texts(&reference, &reqs).await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, || {}).await;
    assert_all_exact(&outcomes, &expected);
    assert!(metric(&fe.url(), "switchyard_stream_migrations_total").await >= 1.0);
    // Passive health counted the error events against the worker.
    assert_eq!(admin_health(&fe, &id_of(&broken)).await, "ejected");
}

#[tokio::test]
async fn without_migration_an_error_event_mid_stream_ends_with_stream_interrupted() {
    let reference = mocker(&[]).await.unwrap();
    let broken = mocker(&["--error-after-tokens", "10"]).await.unwrap();
    // Never ejected: every stream must reach the worker and meet its error.
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nhealth:\n  failure_threshold: 1000\n",
        &[&broken],
        &[],
    )
    .await;
    let reqs = requests(4, 30);
    let expected = expected_texts(&reference, &reqs).await;
    let outcomes = streams_with_fault(&fe.url(), &reqs, || {}).await;
    for (i, (outcome, expected)) in outcomes.iter().zip(&expected).enumerate() {
        assert_eq!(outcome.status, 200, "stream {i}");
        assert!(outcome.done(), "stream {i}: {:?}", outcome.events);
        let error = outcome
            .error()
            .unwrap_or_else(|| panic!("stream {i} has no error"));
        assert_eq!(error["error"]["code"], "stream_interrupted", "{error}");
        let message = error["error"]["message"].as_str().unwrap_or("");
        // What happened, not the worker's own words (those are logged).
        assert!(message.contains("error event"), "{message}");
        assert!(!message.contains("simulated"), "{message}");
        assert!(
            expected.starts_with(&outcome.text()),
            "stream {i}: garbled text"
        );
        assert!(
            !outcome.text().is_empty(),
            "stream {i}: the first tokens were lost"
        );
    }
    // Only the worker's error turned into ours: its own error event was not relayed.
    for outcome in &outcomes {
        let errors = outcome
            .events
            .iter()
            .filter(|e| e.contains("\"error\""))
            .count();
        assert_eq!(errors, 1, "{:?}", outcome.events);
    }
}
