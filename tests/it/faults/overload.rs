//! Saturation: admission control and shedding answer 503/429 with `Retry-After`; a client
//! that leaves cancels the generation on the worker.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use switchyard_tests::http::metric;
use switchyard_tests::{mocker, Proc};

use super::{frontend_over, wait_metric};
use crate::chat;

/// A long stream held open in the background (dropped = client gone).
fn hold_stream(fe: &Proc) -> tokio::task::JoinHandle<()> {
    let url = format!("{}/v1/chat/completions", fe.url());
    tokio::spawn(async move {
        if let Ok(resp) = reqwest::Client::new()
            .post(url)
            .json(&chat("a very long answer", 400, true))
            .send()
            .await
        {
            let mut body = resp.bytes_stream();
            while body.next().await.is_some() {}
        }
    })
}

async fn post(fe: &Proc, low_priority: bool) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&chat("hello", 2, false))
        .timeout(Duration::from_secs(10));
    if low_priority {
        req = req.header("x-switchyard-priority", "low");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry_after,
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_saturated_frontend_sheds_with_503_or_429_and_retry_after() {
    let m = mocker(&["--itl-ms", "20"]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\noverload:\n  max_concurrent: 2\n  max_queue: 1\n  queue_timeout_ms: 300\n",
        &[&m],
        &[],
    )
    .await;
    let held = [hold_stream(&fe), hold_stream(&fe)];
    let busy = wait_metric(
        &fe.url(),
        "switchyard_requests_in_flight",
        Duration::from_secs(5),
        |v| v >= 2.0,
    )
    .await;
    assert!(busy >= 2.0, "the long streams did not start");

    let (status, retry_after, body) = post(&fe, true).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // One request may queue (and times out), the next finds the queue full.
    let (queued, overflow) = tokio::join!(post(&fe, false), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(&fe, false).await
    });
    for (status, retry_after, body) in [queued, overflow] {
        assert_eq!(status, 503, "{body}");
        assert!(retry_after.is_some());
        assert_eq!(body["error"]["code"], "overloaded");
    }
    assert!(metric(&fe.url(), "switchyard_requests_shed_total").await >= 3.0);

    held.iter().for_each(tokio::task::JoinHandle::abort);
    let idle = wait_metric(
        &fe.url(),
        "switchyard_requests_in_flight",
        Duration::from_secs(5),
        |v| v == 0.0,
    )
    .await;
    assert_eq!(idle, 0.0);
    assert_eq!(
        post(&fe, false).await.0,
        200,
        "admission recovers once slots free up"
    );
}

#[tokio::test]
async fn requests_are_shed_when_every_instance_is_full() {
    let m = mocker(&["--itl-ms", "20"]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\noverload:\n  max_in_flight_per_instance: 1\n",
        &[&m],
        &[],
    )
    .await;
    let held = hold_stream(&fe);
    wait_metric(
        &fe.url(),
        "switchyard_requests_in_flight",
        Duration::from_secs(5),
        |v| v >= 1.0,
    )
    .await;
    let (status, retry_after, body) = post(&fe, false).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(post(&fe, true).await.0, 429);
    held.abort();
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_generation_within_500_ms() {
    let m = mocker(&["--itl-ms", "20"]).await.unwrap();
    let fe = frontend_over("probe:\n  interval_ms: 0\n", &[&m], &[]).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&chat("a very long answer", 400, true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    for _ in 0..3 {
        body.next().await;
    }
    drop(body);
    let left = Instant::now();
    let cancelled = wait_metric(
        &m.url(),
        "switchyard_mocker_requests_cancelled_total",
        Duration::from_millis(500),
        |v| v >= 1.0,
    )
    .await;
    assert!(
        cancelled >= 1.0,
        "the worker did not see the abort within 500 ms"
    );
    assert!(left.elapsed() < Duration::from_secs(2));
}
