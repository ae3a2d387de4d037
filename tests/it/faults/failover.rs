//! Failing workers before the first byte: black holes, flaky and all-failing pools; retries
//! stay within the retry budget.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use nix::sys::signal::Signal;
use switchyard_tests::http::metric;
use switchyard_tests::{mocker, Proc};

use super::{admin_health, frontend_over, id_of, ADMIN_TOKEN};
use crate::chat;

/// Sends `n` chat requests (alternating streamed and not), `concurrency` at a time; returns
/// the statuses and whether each answer had a `Retry-After` header.
async fn load(fe: &Proc, n: usize, concurrency: usize) -> Vec<(u16, bool)> {
    let url = format!("{}/v1/chat/completions", fe.url());
    stream::iter(0..n)
        .map(|i| {
            let url = url.clone();
            async move {
                let body = chat(&format!("request {i}"), 4, i % 2 == 1);
                let resp = reqwest::Client::new()
                    .post(&url)
                    .json(&body)
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                match resp {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let retry_after = r.headers().contains_key("retry-after");
                        let text = r.text().await.unwrap_or_default();
                        // A streamed 200 must also have completed.
                        let ok = status != 200 || !text.contains("\"error\"");
                        (if ok { status } else { 599 }, retry_after)
                    }
                    Err(_) => (0, false),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[tokio::test]
async fn a_black_holed_worker_is_ejected_in_time_and_requests_succeed() {
    let hole = mocker(&[]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    // Requests caught by the black hole before it is detected time out together; their
    // retries must fit the budget, so its floor is the client concurrency.
    let fe = frontend_over(
        "probe:\n  interval_ms: 100\n  timeout_ms: 200\nupstream:\n  first_byte_timeout_ms: 500\nhealth:\n  eject_base_ms: 5000\nretry_budget:\n  min_concurrent: 10\n",
        &[&hole, &good],
        &["--policy", "round-robin", "--admin-token", ADMIN_TOKEN],
    )
    .await;
    hole.signal(Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    let detect = async {
        // Configured window: one probe period plus its timeout (300 ms); 2 s bounds the wait.
        while admin_health(&fe, &id_of(&hole)).await == "healthy" {
            if stopped.elapsed() > Duration::from_secs(2) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    };
    let (detected, statuses) = tokio::join!(detect, load(&fe, 100, 10));
    assert!(detected, "the black hole was not taken out within 2 s");
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert!(ok >= 99, "{ok}/100 succeeded: {statuses:?}");
    hole.signal(Signal::SIGCONT).unwrap();
}

#[tokio::test]
async fn a_half_failing_worker_next_to_a_healthy_one_loses_no_request() {
    let flaky = mocker(&["--fail-rate", "0.5", "--seed", "3"])
        .await
        .unwrap();
    let good = mocker(&[]).await.unwrap();
    // Never eject: every failure must be absorbed by a retry (budget floor above the load).
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nhealth:\n  failure_threshold: 100000\nretry_budget:\n  min_concurrent: 8\n",
        &[&flaky, &good],
        &["--policy", "round-robin"],
    )
    .await;
    let statuses = load(&fe, 80, 4).await;
    assert!(statuses.iter().all(|(s, _)| *s == 200), "{statuses:?}");
    assert!(metric(&fe.url(), "switchyard_retries_total").await >= 1.0);
}

#[tokio::test]
async fn an_all_failing_pool_answers_fast_503s_without_a_retry_storm() {
    let a = mocker(&["--fail-rate", "1"]).await.unwrap();
    let b = mocker(&["--fail-rate", "1"]).await.unwrap();
    let fe = frontend_over("probe:\n  interval_ms: 0\n", &[&a, &b], &[]).await;
    let statuses = load(&fe, 40, 4).await;
    assert!(
        statuses.iter().all(|(s, _)| matches!(s, 502 | 503)),
        "{statuses:?}"
    );
    let fast = statuses.iter().filter(|(s, ra)| *s == 503 && *ra).count();
    assert!(fast >= 30, "only {fast}/40 were fast 503s with Retry-After");
    // Upstream attempts: each 502 made at least one, retries add the rest.
    let bad_gateway = statuses.iter().filter(|(s, _)| *s == 502).count() as f64;
    let attempts = bad_gateway + metric(&fe.url(), "switchyard_retries_total").await;
    assert!(
        attempts <= 12.0,
        "{attempts} upstream attempts for 40 requests"
    );
}

#[tokio::test]
async fn the_retry_budget_bounds_amplification_when_nothing_can_be_ejected() {
    let pool: Vec<Proc> = join_all((0..3).map(|_| mocker(&["--hang-rate", "1"])))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nupstream:\n  first_byte_timeout_ms: 300\n  max_retries: 2\nhealth:\n  failure_threshold: 100000\nretry_budget:\n  percent: 20\n  min_concurrent: 1\n",
        &pool.iter().collect::<Vec<_>>(),
        &[],
    )
    .await;
    let statuses = load(&fe, 30, 30).await;
    assert!(statuses.iter().all(|(s, _)| *s == 504), "{statuses:?}");
    let retries = metric(&fe.url(), "switchyard_retries_total").await;
    // Unbudgeted, 30 requests would make 90 attempts; the budget allows ~20 % extra.
    assert!(retries <= 15.0, "{retries} retries for 30 requests");
    assert!(metric(&fe.url(), "switchyard_retry_budget_exhausted_total").await >= 1.0);
}

#[tokio::test]
async fn the_idle_canary_takes_out_a_wedged_worker_and_brings_it_back() {
    let wedged = mocker(&[]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    // `GET /health` is off: only the canary's one-token generation can notice.
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\ncanary:\n  idle_ms: 200\n  timeout_ms: 300\n  healthy_threshold: 2\n",
        &[&wedged, &good],
        &["--admin-token", ADMIN_TOKEN],
    )
    .await;
    let id = id_of(&wedged);
    wedged.signal(Signal::SIGSTOP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin_health(&fe, &id).await != "canary_failed" {
        assert!(
            Instant::now() < deadline,
            "the canary never failed the wedged worker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = load(&fe, 10, 2).await;
    assert!(statuses.iter().all(|(s, _)| *s == 200), "{statuses:?}");
    wedged.signal(Signal::SIGCONT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin_health(&fe, &id).await != "healthy" {
        assert!(
            Instant::now() < deadline,
            "the canary never brought the worker back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
