//! Memory and connections are bounded before they are spent: request bodies are charged to
//! a frontend-wide budget before they are read (the one over it waits, then gets 503
//! `body_budget_exhausted`, its body drained and never kept), connections over the cap are refused and counted, and a
//! client that stops reading a stream is cut after the write timeout, freeing its slot.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::mocker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{frontend_over, wait_metric};
use crate::{chat, MODEL};

const MIB: usize = 1024 * 1024;

/// A chat body of exactly `len` bytes (an unknown field pads it).
fn body_of_len(len: usize) -> String {
    let head = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hi"}}],"max_tokens":2,"pad":""#
    );
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

/// Sends a request head declaring `len` body bytes, and none of the body.
async fn head_only(addr: &str, len: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Reads one response (the server closes or answers with a content-length body).
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            let n = s.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(usize::MAX);
                if body.len() >= len {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn bodies_over_the_budget_are_refused_and_the_budget_is_returned() {
    let m = mocker(&[]).await.unwrap();
    let yaml = "limits: { max_body_bytes: 1048576, max_inflight_body_bytes: 2621440, body_budget_wait_ms: 200 }\n";
    let fe = frontend_over(yaml, &[&m], &[]).await;
    let addr = fe.url().trim_start_matches("http://").to_owned();
    let in_flight = "switchyard_request_body_bytes_in_flight";

    // Two bodies of 1 MiB reserve their whole length on their headers alone.
    let mut first = head_only(&addr, MIB).await;
    let mut second = head_only(&addr, MIB).await;
    let held = wait_metric(&fe.url(), in_flight, Duration::from_secs(10), |v| {
        v == (2 * MIB) as f64
    })
    .await;
    assert_eq!(
        held,
        (2 * MIB) as f64,
        "both bodies are charged before they are read"
    );

    // A third does not fit in the 2.5 MiB budget: it waits, then is refused; its body is
    // drained (so the client can read the answer), never kept.
    let mut third = head_only(&addr, MIB).await;
    third.write_all(body_of_len(MIB).as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut third).await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "body_budget_exhausted", "{v}");
    assert_eq!(v["error"]["type"], "service_unavailable", "{v}");
    let rejected = "switchyard_request_body_budget_rejected_total";
    assert_eq!(
        switchyard_tests::http::metric(&fe.url(), rejected).await,
        1.0
    );
    assert_eq!(
        switchyard_tests::http::metric(&fe.url(), in_flight).await,
        (2 * MIB) as f64,
        "the refused request took nothing"
    );

    // The admitted two are served once their bodies arrive, and give the budget back.
    for s in [&mut first, &mut second] {
        s.write_all(body_of_len(MIB).as_bytes()).await.unwrap();
    }
    for s in [&mut first, &mut second] {
        let (status, body) = read_response(s).await;
        assert_eq!(status, 200, "{body}");
    }
    let left = wait_metric(&fe.url(), in_flight, Duration::from_secs(10), |v| v == 0.0).await;
    assert_eq!(left, 0.0);
}

#[tokio::test]
async fn a_connection_over_the_cap_is_refused_and_counted() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend_over("limits: { max_connections: 3 }\n", &[&m], &[]).await;
    let addr = fe.url().trim_start_matches("http://").to_owned();
    let open = "switchyard_connections_open";
    // Readiness polling may still hold a connection or two: wait until they are gone.
    assert_eq!(
        wait_metric(&fe.url(), open, Duration::from_secs(10), |v| v == 1.0).await,
        1.0,
        "only the scrape itself is open"
    );

    // Three kept-alive connections, each proven served. A scrape's connection may not be
    // closed on the server's side yet: a refused attempt is retried (and counted below).
    let mut held = Vec::new();
    let mut refusals = 0;
    while held.len() < 3 {
        assert!(refusals < 50, "the cap never freed up");
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /live HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        match read_response(&mut s).await {
            (200, _) => held.push(s),
            (503, _) => {
                refusals += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // The fourth is answered 503 and closed without being read.
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let (status, body) = read_response(&mut extra).await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "connection_limit", "{v}");
    assert_eq!(v["error"]["type"], "service_unavailable", "{v}");

    // Free one place to scrape the count: every refusal, the fourth included (a scrape that
    // races the freed place is refused and counted too, hence at least).
    drop(held.pop());
    let refused = r#"switchyard_connections_refused_total{reason="max_connections"}"#;
    let want = f64::from(refusals + 1);
    let n = wait_metric(&fe.url(), refused, Duration::from_secs(10), |v| v >= want).await;
    assert!(n >= want, "{n} refusals counted, {want} seen");
}

#[tokio::test]
async fn a_client_that_stops_reading_a_stream_is_cut_and_frees_its_slot() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend_over("limits: { write_timeout_ms: 300 }\n", &[&m], &[]).await;
    let addr = fe.url().trim_start_matches("http://").parse().unwrap();

    // A client with a tiny receive window that never reads a long stream.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let body = chat("a very long answer", 200_000, true).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let in_flight = "switchyard_requests_in_flight";
    assert_eq!(
        wait_metric(&fe.url(), in_flight, Duration::from_secs(10), |v| v == 1.0).await,
        1.0,
        "the stream started"
    );

    let timeouts = "switchyard_connection_write_timeouts_total";
    let n = wait_metric(&fe.url(), timeouts, Duration::from_secs(30), |v| v >= 1.0).await;
    assert_eq!(n, 1.0, "the stalled client was cut");
    let left = wait_metric(&fe.url(), in_flight, Duration::from_secs(10), |v| v == 0.0).await;
    assert_eq!(left, 0.0, "its in-flight slot is free");
    drop(s);
}
