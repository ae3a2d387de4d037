//! A frontend rolling restart under streaming load, as the chart configures it: two frontends
//! behind a balancer that routes only to `/ready` backends; one gets SIGTERM while streams run
//! and new ones keep arriving. With a drain delay (`/ready` 503 while still accepting) longer
//! than the balancer's health-check period, no stream fails: in-flight ones finish on the
//! draining frontend, new ones go to the other.

use futures_util::future::join_all;
use nix::sys::signal::Signal;
use switchyard_tests::http::{metric, post_sse};
use switchyard_tests::{frontend_with_config, mocker, worker_flags};

use super::balancer::Balancer;
use crate::{chat, MODEL};

const STREAMS_BEFORE: usize = 8;
const STREAMS_AFTER: usize = 8;

#[tokio::test]
async fn a_draining_frontend_fails_no_stream() {
    let m = mocker(&["--itl-ms", "20"]).await.unwrap();
    let config = "limits:\n  drain_delay_ms: 1000\n  shutdown_grace_ms: 20000\n";
    let workers = worker_flags(MODEL, &[&m]);
    let (a, _da) = frontend_with_config(config, &workers).await.unwrap();
    let (b, _db) = frontend_with_config(config, &workers).await.unwrap();
    let lb = Balancer::start(&[a.port, b.port]).await;
    let url = format!("http://{}/v1/chat/completions", lb.addr);
    // Wait until the balancer's own health check has seen both backends ready.
    crate::distributed::eventually(
        std::time::Duration::from_secs(20),
        "the balancer sees both backends ready",
        || {
            let ready = lb.ready_backends() >= 2;
            async move { ready.then_some(()) }
        },
    )
    .await;

    // Long streams (40 tokens at 20 ms) in flight on both frontends…
    let before: Vec<_> = (0..STREAMS_BEFORE)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(
                async move { post_sse(&url, &chat(&format!("before {i}"), 40, true)).await },
            )
        })
        .collect();
    // …on both frontends (each has streams in flight) before A is told to stop.
    for fe in [&a, &b] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while metric(&fe.url(), "switchyard_requests_in_flight").await < 1.0 {
            assert!(std::time::Instant::now() < deadline, "no stream in flight");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    a.signal(Signal::SIGTERM).unwrap();
    // New streams keep arriving while A drains.
    let after: Vec<_> = (0..STREAMS_AFTER)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(
                async move { post_sse(&url, &chat(&format!("after {i}"), 10, true)).await },
            )
        })
        .collect();

    let mut failed = Vec::new();
    for result in join_all(before.into_iter().chain(after)).await {
        match result.unwrap() {
            Ok((status, _, events)) => {
                let ok = status == 200
                    && events.last().map(String::as_str) == Some("[DONE]")
                    && !events.iter().any(|e| e.contains("\"error\""));
                if !ok {
                    failed.push(format!("{status}: {events:?}"));
                }
            }
            // Refused or reset: what a rollout without a drain delay does to new streams.
            Err(error) => failed.push(format!("transport: {error}")),
        }
    }
    assert!(failed.is_empty(), "failed streams: {failed:?}");
}
