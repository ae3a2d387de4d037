//! Graceful shutdown: in-flight streams finish, new connections are refused.

use std::time::Duration;

use futures_util::StreamExt;
use nix::sys::signal::Signal;
use switchyard_tests::http::{sse_data, stream_text};
use switchyard_tests::{frontend, mocker, worker_flags};

use crate::{chat, MODEL};

#[tokio::test]
async fn sigterm_lets_in_flight_streams_finish() {
    let m = mocker(&["--itl-ms", "25"]).await.unwrap();
    let mut fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&chat("a long answer", 40, true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut text = String::from_utf8_lossy(&body.next().await.unwrap().unwrap()).into_owned();
    fe.signal(Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let refused = reqwest::Client::new()
        .get(format!("{}/live", fe.url()))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a new connection was accepted during drain"
    );
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events = sse_data(&text);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert_eq!(stream_text(&events).split_whitespace().count(), 40);
    assert!(!text.contains("\"error\""), "{text}");
    assert!(
        fe.wait_exit(Duration::from_secs(10)).await.unwrap(),
        "frontend did not exit after draining"
    );
}
