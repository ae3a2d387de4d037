//! Failing workers before the first byte: black holes, flaky and all-failing pools, workers
//! whose first event is an error, refused connections; passive ejection and the active probe
//! (per-worker probe paths); retries stay within the retry budget; the panic policy.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use nix::sys::signal::Signal;
use serde_json::Value;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{free_port, frontend_with_config, mocker, worker_flags, Proc};

use super::{admin_health, frontend_over, id_of, stream, wait_health, wait_metric, ADMIN_TOKEN};
use crate::{chat, MODEL};

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
async fn a_black_holed_worker_is_taken_out_by_the_probe_and_requests_succeed() {
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
    let id = id_of(&hole);
    assert_eq!(admin_health(&fe, &id).await, "healthy");
    hole.signal(Signal::SIGSTOP).unwrap();
    // `probe_failed` means the active probe caught it (within one period plus its timeout,
    // 300 ms here, by construction; the time is measured by benches/faults/measure.py), not
    // the passive ejection of requests that timed out on it. The bound only ends the wait.
    let (state, statuses) = tokio::join!(
        wait_health(&fe, &id, "probe_failed", Duration::from_secs(10)),
        load(&fe, 100, 10)
    );
    assert_eq!(
        state, "probe_failed",
        "the probe never took the black hole out"
    );
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
async fn an_all_failing_pool_answers_its_5xx_without_a_retry_storm_or_ejections() {
    // Every request fails on every instance: indistinguishable, per request, from a poison
    // request, so each is answered after a second instance reproduced the failure, and no
    // instance is ejected — even with a failure threshold of one (the active checks are what
    // take out a truly broken worker).
    let pool: Vec<Proc> = join_all((0..3).map(|_| mocker(&["--fail-rate", "1"])))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nhealth:\n  failure_threshold: 1\n",
        &pool.iter().collect::<Vec<_>>(),
        &["--admin-token", ADMIN_TOKEN],
    )
    .await;
    // One at a time first: exactly two attempts each, the workers' status, a generic message.
    let url = format!("{}/v1/chat/completions", fe.url());
    for i in 0..4 {
        let (status, _, body) = post_json(&url, &chat(&format!("x {i}"), 2, false), &[])
            .await
            .unwrap();
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"]["code"], "upstream_error");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("simulated failure"),
            "worker text leaked: {message}"
        );
    }
    assert_eq!(metric(&fe.url(), "switchyard_retries_total").await, 4.0);
    // Then under concurrency: at most one retry per request (the one that reproduces the
    // failure), never a third attempt; the retry budget may refuse some.
    let statuses = load(&fe, 40, 4).await;
    assert!(statuses.iter().all(|(s, _)| *s == 500), "{statuses:?}");
    let retries = metric(&fe.url(), "switchyard_retries_total").await;
    assert!(retries <= 44.0, "{retries} retries for 44 requests");
    for p in &pool {
        assert_eq!(admin_health(&fe, &id_of(p)).await, "healthy");
    }
}

#[tokio::test]
async fn the_retry_budget_bounds_amplification_when_nothing_can_be_ejected() {
    let pool: Vec<Proc> = join_all((0..3).map(|_| mocker(&["--hang-rate", "1"])))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nupstream:\n  first_byte_timeout_ms: 1000\n  max_retries: 2\nhealth:\n  failure_threshold: 100000\nretry_budget:\n  percent: 20\n  min_concurrent: 1\n",
        &pool.iter().collect::<Vec<_>>(),
        &[],
    )
    .await;
    let statuses = load(&fe, 30, 30).await;
    assert!(statuses.iter().all(|(s, _)| *s == 504), "{statuses:?}");
    let retries = metric(&fe.url(), "switchyard_retries_total").await;
    // Unbudgeted, 30 requests would make 60 retries. The budget allows retries in flight up
    // to 20 % of the requests in flight (at most 30, so 6); each retry holds its permit for
    // the whole first-byte timeout (1 s), longer than the 30 first attempts take to time out
    // together, so no permit is returned and re-used meanwhile. A second retry needs a
    // permit while its request still holds the first, with at most 6 requests left in
    // flight (limit: the floor, 1): never granted.
    assert!(retries >= 1.0, "the budget's floor allows retries");
    assert!(retries <= 6.0, "{retries} retries for 30 requests");
    assert!(metric(&fe.url(), "switchyard_retry_budget_exhausted_total").await >= 24.0);
}

#[tokio::test]
async fn an_error_event_before_the_first_token_is_retried_and_counted_against_the_worker() {
    let broken = mocker(&["--error-after-tokens", "0"]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nhealth:\n  failure_threshold: 1\n  eject_base_ms: 60000\n  eject_max_ms: 60000\n",
        &[&broken, &good],
        &["--policy", "round-robin", "--admin-token", ADMIN_TOKEN],
    )
    .await;
    for i in 0..6 {
        let outcome = stream(
            &fe.url(),
            "/v1/chat/completions",
            &chat(&format!("e {i}"), 4, true),
        )
        .await;
        assert_eq!(outcome.status, 200, "stream {i}");
        assert!(outcome.done(), "stream {i}: {:?}", outcome.events);
        assert!(
            outcome.error().is_none(),
            "stream {i}: {:?}",
            outcome.error()
        );
        assert!(!outcome.text().is_empty(), "stream {i} has no text");
    }
    assert!(metric(&fe.url(), "switchyard_retries_total").await >= 1.0);
    assert_eq!(admin_health(&fe, &id_of(&broken)).await, "ejected");
}

#[tokio::test]
async fn with_every_instance_unhealthy_fail_fast_sheds_and_route_all_serves() {
    let m = mocker(&[]).await.unwrap();
    // The probe asks a path the worker does not serve: it is marked unhealthy although it
    // could serve (a wrong health signal, the case panic routing exists for).
    let yaml = |policy: &str| {
        format!("probe:\n  interval_ms: 100\n  path: /no-such-path\noverload:\n  panic_policy: {policy}\n")
    };
    let fail_fast = frontend_over(&yaml("fail-fast"), &[&m], &["--admin-token", ADMIN_TOKEN]).await;
    let route_all = frontend_over(&yaml("route-all"), &[&m], &["--admin-token", ADMIN_TOKEN]).await;
    let id = id_of(&m);
    for fe in [&fail_fast, &route_all] {
        assert_eq!(
            wait_health(fe, &id, "probe_failed", Duration::from_secs(10)).await,
            "probe_failed"
        );
    }
    let statuses = load(&fail_fast, 4, 2).await;
    assert!(
        statuses.iter().all(|s| *s == (503, true)),
        "fail-fast: {statuses:?}"
    );
    let statuses = load(&route_all, 4, 2).await;
    assert!(
        statuses.iter().all(|(s, _)| *s == 200),
        "route-all: {statuses:?}"
    );
    assert_eq!(
        metric(&route_all.url(), "switchyard_panic_routed_total").await,
        4.0
    );
    assert_eq!(
        metric(&fail_fast.url(), "switchyard_panic_routed_total").await,
        0.0
    );
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

/// Active probing off, so these tests see passive health alone.
const NO_PROBE: &str = "probe:\n  interval_ms: 0\n";

async fn passive_only(args: &[String]) -> Proc {
    // The config file is read at start-up only; the temp dir may go once the frontend is up.
    frontend_with_config(NO_PROBE, args)
        .await
        .map(|(p, _dir)| p)
        .unwrap()
}

#[tokio::test]
async fn a_failing_instance_is_ejected_and_traffic_continues() {
    let bad = mocker(&["--status", "500"]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    let mut args = worker_flags(MODEL, &[&bad, &good]);
    args.extend([
        "--policy".into(),
        "round-robin".into(),
        "--admin-token".into(),
        "test-admin-token".into(),
    ]);
    // One failure ejects here (the default needs three, from distinct requests).
    let (fe, _dir) = frontend_with_config(
        &format!("{NO_PROBE}health:\n  failure_threshold: 1\n"),
        &args,
    )
    .await
    .unwrap();
    let good_id = good.url().trim_start_matches("http://").to_owned();
    for i in 0..20 {
        let (status, headers, body) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &chat(&format!("{i}"), 3, false),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(headers["x-switchyard-instance"], good_id.as_str());
    }
    // The bad instance was tried once, then ejected: far fewer retries than requests.
    let retries = metric(&fe.url(), "switchyard_retries_total").await;
    assert!((1.0..5.0).contains(&retries), "retries = {retries}");
    let admin: Value = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bad_view = admin["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] != good_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(bad_view["health"], "ejected", "{admin}");
    assert!(
        bad_view["last_error"].as_str().unwrap().contains("500"),
        "{admin}"
    );
}

#[tokio::test]
async fn a_connection_failure_is_retried_on_the_next_instance() {
    let good = mocker(&[]).await.unwrap();
    let dead = format!("{MODEL}=http://127.0.0.1:{}", free_port());
    let mut args = vec!["--worker".to_owned(), dead];
    args.extend(worker_flags(MODEL, &[&good]));
    args.extend(["--policy".into(), "round-robin".into()]);
    let fe = passive_only(&args).await;
    for stream in [false, true] {
        for i in 0..4 {
            let (status, _, body) = post_json(
                &format!("{}/v1/chat/completions", fe.url()),
                &chat(&format!("{i}"), 2, stream),
                &[],
            )
            .await
            .unwrap();
            assert_eq!(status, 200, "{body}");
        }
    }
    assert!(metric(&fe.url(), "switchyard_retries_total").await >= 1.0);
}

#[tokio::test]
async fn the_active_probe_removes_an_unhealthy_instance_before_any_request() {
    let sick = mocker(&["--status", "503"]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    let (fe, _dir) = frontend_with_config(
        "probe:\n  interval_ms: 100\n",
        &worker_flags(MODEL, &[&sick, &good]),
    )
    .await
    .unwrap();
    let sick_id = sick.url().trim_start_matches("http://").to_owned();
    let series = format!("switchyard_instance_healthy{{worker=\"{sick_id}\",model=\"{MODEL}\"}}");
    let healthy = wait_metric(&fe.url(), &series, Duration::from_secs(5), |v| v == 0.0).await;
    assert_eq!(healthy, 0.0, "probe never marked {sick_id} unhealthy");
    for i in 0..6 {
        let (status, headers, _) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &chat(&format!("{i}"), 2, false),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert_ne!(headers["x-switchyard-instance"], sick_id.as_str());
    }
    assert_eq!(
        metric(&fe.url(), "switchyard_retries_total").await,
        0.0,
        "no request should have reached the sick instance"
    );
}

#[tokio::test]
async fn a_worker_with_its_own_health_path_is_probed_there() {
    // The global probe path does not exist on the mocker; worker `a` overrides it.
    let (a, b) = (mocker(&[]).await.unwrap(), mocker(&[]).await.unwrap());
    let yaml = format!(
        "probe:\n  interval_ms: 100\n  path: /nope\nworkers:\n  - {{ id: a, model: {MODEL}, url: \"{}\", health_path: /health }}\n  - {{ id: b, model: {MODEL}, url: \"{}\" }}\n",
        a.url(),
        b.url()
    );
    let (fe, _dir) = frontend_with_config(&yaml, &[]).await.unwrap();
    let healthy =
        |w: &str| format!("switchyard_instance_healthy{{worker=\"{w}\",model=\"{MODEL}\"}}");
    let probed = wait_metric(&fe.url(), &healthy("b"), Duration::from_secs(10), |v| {
        v == 0.0
    })
    .await;
    assert_eq!(probed, 0.0, "b was never probed on /nope");
    assert_eq!(metric(&fe.url(), &healthy("a")).await, 1.0);
    let counts = crate::spread(&fe, 4, None).await;
    assert_eq!(counts.get("a"), Some(&4), "{counts:?}");
}
