//! Saturation: admission control and shedding answer 503/429 with `Retry-After`; a request
//! queues for a slot and is served (or times out) distinctly from one that overflows the
//! queue; a slow body holds no slot; KV usage reported over NATS sheds; a client that leaves
//! cancels the generation on the worker.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use switchyard_tests::http::metric;
use switchyard_tests::services::Nats;
use switchyard_tests::{mocker, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{frontend_over, wait_metric};
use crate::{chat, MODEL};

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
        .timeout(Duration::from_secs(20));
    if low_priority {
        req = req.header("x-switchyard-priority", "low");
    }
    outcome(req.send().await.unwrap()).await
}

/// Status, `Retry-After` and body of a response.
async fn outcome(resp: reqwest::Response) -> (u16, Option<String>, Value) {
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

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_saturated_frontend_queues_then_serves_or_sheds_with_503_or_429() {
    let m = mocker(&["--itl-ms", "20"]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\noverload:\n  max_concurrent: 2\n  max_queue: 1\n  queue_timeout_ms: 2000\n",
        &[&m],
        &[],
    )
    .await;
    let base = fe.url();
    let queued = || {
        wait_metric(
            &base,
            "switchyard_requests_queued",
            Duration::from_secs(10),
            |v| v >= 1.0,
        )
    };
    let mut held = vec![hold_stream(&fe), hold_stream(&fe)];
    let busy = wait_metric(
        &base,
        "switchyard_requests_in_flight",
        Duration::from_secs(10),
        |v| v >= 2.0,
    )
    .await;
    assert!(busy >= 2.0, "the long streams did not start");

    // Low priority never queues: 429 at once.
    let (status, retry_after, body) = post(&fe, true).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // One request waits in the queue (the gauge shows it) and times out there; while it
    // waits, the next one overflows the queue at once.
    let waiter = tokio::spawn({
        let fe_url = base.clone();
        async move { post_to(&fe_url).await }
    });
    assert_eq!(queued().await, 1.0, "the request never entered the queue");
    let (status, retry_after, body) = post(&fe, false).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(message(&body).contains("queue is full"), "{body}");
    let (status, retry_after, body) = waiter.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some());
    assert!(message(&body).contains("no slot freed up"), "{body}");

    // A queued request gets the slot a finished stream frees, and is served.
    let waiter = tokio::spawn({
        let fe_url = base.clone();
        async move { post_to(&fe_url).await }
    });
    assert_eq!(queued().await, 1.0, "the request never entered the queue");
    held.pop().unwrap().abort();
    let (status, _, body) = waiter.await.unwrap();
    assert_eq!(status, 200, "the queued request was not served: {body}");
    assert!(metric(&base, "switchyard_requests_shed_total").await >= 3.0);
    held.iter().for_each(tokio::task::JoinHandle::abort);
}

async fn post_to(base: &str) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat("queued", 2, false))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    outcome(resp).await
}

#[tokio::test]
async fn a_client_trickling_its_body_holds_no_admission_slot() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\noverload:\n  max_concurrent: 1\n  max_queue: 0\nlimits:\n  body_idle_timeout_ms: 5000\n",
        &[&m],
        &[],
    )
    .await;
    let mut slow = TcpStream::connect(("127.0.0.1", fe.port)).await.unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    // Let the frontend start on the slow request (it is then waiting for the body).
    wait_metric(
        &fe.url(),
        "switchyard_requests_in_flight",
        Duration::from_secs(10),
        |v| v >= 1.0,
    )
    .await;
    for _ in 0..3 {
        let (status, _, body) = post(&fe, false).await;
        assert_eq!(status, 200, "a complete request was refused: {body}");
    }
    // The slow body is dropped at its idle timeout with a 400.
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf))
        .await
        .expect("no answer to the stalled body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
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
        Duration::from_secs(10),
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
async fn requests_are_shed_when_every_instance_reports_kv_usage_over_the_threshold() {
    let nats = Nats::start().unwrap();
    let url = nats.url();
    // 8 blocks of 64 prompt bytes: one long prompt pins most of the cache while it runs.
    let m = mocker(&["--nats", url.as_str(), "--kv-blocks", "8", "--itl-ms", "50"])
        .await
        .unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\noverload:\n  max_kv_usage: 0.5\n",
        &[&m],
        &["--nats", url.as_str()],
    )
    .await;
    assert_eq!(
        post(&fe, false).await.0,
        200,
        "served while the cache is empty"
    );
    let long = {
        let url = format!("{}/v1/completions", fe.url());
        tokio::spawn(async move {
            let body = json!({"model": MODEL, "prompt": "x".repeat(400), "max_tokens": 400, "stream": true});
            if let Ok(resp) = reqwest::Client::new().post(url).json(&body).send().await {
                let mut body = resp.bytes_stream();
                while body.next().await.is_some() {}
            }
        })
    };
    let usage = wait_metric(
        &m.url(),
        "switchyard_mocker_kv_usage",
        Duration::from_secs(10),
        |v| v >= 0.5,
    )
    .await;
    assert!(
        usage >= 0.5,
        "the long prompt did not fill the cache: {usage}"
    );
    // The frontend learns the usage from the mocker's next load snapshot on NATS.
    let mut shed = None;
    for _ in 0..100 {
        let (status, retry_after, body) = post(&fe, false).await;
        if status == 503 {
            shed = Some((retry_after, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (retry_after, body) =
        shed.expect("never shed while the only instance reported high KV usage");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(retry_after.is_some());
    assert_eq!(post(&fe, true).await.0, 429, "low priority gets 429");
    long.abort();
    let mut served = false;
    for _ in 0..100 {
        if post(&fe, false).await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "never served again after the cache emptied");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_generation_on_the_worker() {
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
    assert_eq!(
        metric(&m.url(), "switchyard_mocker_requests_cancelled_total").await,
        0.0,
        "nothing was cancelled before the client left"
    );
    drop(body);
    // 400 tokens at 20 ms would take 8 s: a cancellation seen within the wait is the abort.
    // (How fast the worker sees it is measured by benches/faults/measure.py.)
    let cancelled = wait_metric(
        &m.url(),
        "switchyard_mocker_requests_cancelled_total",
        Duration::from_secs(5),
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(cancelled, 1.0, "the worker never saw the client leave");
}
