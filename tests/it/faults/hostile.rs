//! Hostile clients and broken responses. No request a client can send ejects an instance: a
//! request that fails on every instance (a poison request) is answered with the workers'
//! status and blamed on no one, and a response larger than the frontend's limit is the
//! request's problem, not the worker's. A non-streamed response cut short is a 502, never a
//! truncated 200.

use std::time::Duration;

use futures_util::future::join_all;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{mocker, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{admin_health, frontend_over, id_of, stream, ADMIN_TOKEN};
use crate::{chat, MODEL};

/// The mockers answer 500 to any prompt containing this (`--fail-on-prompt`).
const POISON: &str = "POISON-PILL";

#[tokio::test]
async fn a_stream_of_hostile_requests_ejects_no_instance_and_valid_requests_succeed() {
    let pool: Vec<Proc> = join_all((0..3).map(|_| mocker(&["--fail-on-prompt", POISON])))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // A small response limit that `max_tokens: 3000` exceeds; a budget floor above the
    // (sequential) load, so retries are never what stops a poison request.
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nupstream:\n  max_response_bytes: 4096\nretry_budget:\n  min_concurrent: 10\n",
        &pool.iter().collect::<Vec<_>>(),
        &["--policy", "round-robin", "--admin-token", ADMIN_TOKEN],
    )
    .await;
    let url = format!("{}/v1/chat/completions", fe.url());
    let rounds = 8;
    for i in 0..rounds {
        let (status, _, body) = post_json(&url, &chat(&format!("{POISON} {i}"), 4, false), &[])
            .await
            .unwrap();
        assert_eq!(status, 500, "poison {i}: {body}");
        assert_eq!(body["error"]["code"], "upstream_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("simulated"),
            "the worker's text reached the client: {message}"
        );
        let streamed = stream(
            &fe.url(),
            "/v1/chat/completions",
            &chat(&format!("{POISON} streamed {i}"), 4, true),
        )
        .await;
        assert_eq!(streamed.status, 500, "streamed poison {i}");
        let (status, _, body) = post_json(&url, &chat(&format!("long {i}"), 3000, false), &[])
            .await
            .unwrap();
        assert_eq!(status, 502, "oversized {i}: {body}");
        assert_eq!(body["error"]["code"], "response_too_large", "{body}");
        let (status, _, body) = post_json(&url, &chat(&format!("valid {i}"), 4, false), &[])
            .await
            .unwrap();
        assert_eq!(status, 200, "valid {i}: {body}");
    }
    let mut ejected = Vec::new();
    for p in &pool {
        let health = admin_health(&fe, &id_of(p)).await;
        if health != "healthy" {
            ejected.push((id_of(p), health));
        }
    }
    assert!(
        ejected.is_empty(),
        "{} of {} instances taken out by hostile requests: {ejected:?}",
        ejected.len(),
        pool.len()
    );
    // A poison request is tried on two instances, no more: the second settles whose fault it
    // is. An oversized response is not re-run elsewhere.
    let retries = metric(&fe.url(), "switchyard_retries_total").await;
    assert!(
        retries <= f64::from(2 * rounds),
        "{retries} retries for {} poison requests",
        2 * rounds
    );
}

/// A worker on a raw socket that answers every request with `response` and closes.
async fn raw_worker(response: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request head and (small) body before answering.
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.ends_with(b"}") {
                        break;
                    }
                }
                let _ = conn.write_all(response).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_non_streamed_body_cut_short_is_a_502_not_a_truncated_200() {
    // Close-delimited (no length, no chunking): HTTP alone cannot tell it was cut.
    let closed = raw_worker(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"mess",
    )
    .await;
    // A content-length the body never reaches.
    let short = raw_worker(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"id\":\"c\",\"choices\":[",
    )
    .await;
    for (name, url) in [("close-delimited", closed), ("short content-length", short)] {
        let fe = frontend_over(
            "probe:\n  interval_ms: 0\n",
            &[],
            &["--worker", &format!("{MODEL}={url}")],
        )
        .await;
        let request_url = format!("{}/v1/chat/completions", fe.url());
        let resp = reqwest::Client::new()
            .post(&request_url)
            .json(&chat("x", 4, false))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(status, 502, "{name}: {body}");
        assert_eq!(
            body["error"]["code"], "upstream_truncated",
            "{name}: {body}"
        );
    }
}
