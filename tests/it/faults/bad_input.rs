//! Hostile input at the edge: every malformed request is a 4xx, never a 5xx or a crash.

use std::time::Duration;

use switchyard_tests::mocker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frontend_over;

async fn post_raw(base: &str, body: Vec<u8>, headers: &[(String, String)]) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(20));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.map_or(0, |r| r.status().as_u16())
}

/// The body cases of the bad-input table are in `errors.rs` (`the_error_table`, exact statuses
/// in OpenAI's error shape); this is the header half: limits that apply before any body.
#[tokio::test]
async fn oversized_or_too_many_headers_are_431_and_the_frontend_survives() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend_over("probe:\n  interval_ms: 0\n", &[&m], &[]).await;
    let msg = r#""messages":[{"role":"user","content":"x"}]"#;
    // Just over the 64 KiB default and well over it: 431, whatever the body (a valid one here,
    // so a 400 from the body cannot pass for the limit).
    let valid = format!(r#"{{"model":"mock-model",{msg},"max_tokens":1}}"#).into_bytes();
    assert_eq!(post_raw(&fe.url(), valid.clone(), &[]).await, 200);
    for size in [65 * 1024, 100 * 1024] {
        let big_header = vec![("x-big".to_owned(), "a".repeat(size))];
        let status = post_raw(&fe.url(), valid.clone(), &big_header).await;
        assert_eq!(status, 431, "a {size}-byte header");
    }
    let many: Vec<_> = (0..300)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect();
    let status = post_raw(&fe.url(), valid, &many).await;
    assert_eq!(status, 431, "too many headers");
    let live = reqwest::get(format!("{}/live", fe.url())).await.unwrap();
    assert_eq!(live.status(), 200, "the frontend survived the table");
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_a_4xx_at_the_idle_timeout() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nlimits:\n  body_idle_timeout_ms: 300\n",
        &[&m],
        &[],
    )
    .await;
    let mut conn = TcpStream::connect(("127.0.0.1", fe.port)).await.unwrap();
    conn.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!((400..500).contains(&status), "{head}");
}
