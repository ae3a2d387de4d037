//! Frontend shutdown and connection-level abuse: SIGTERM under load, drain semantics of
//! `/health` and `/live`, slowloris.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use nix::sys::signal::Signal;
use switchyard_tests::mocker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{expected_text, frontend_over, stream, wait_metric};
use crate::chat;

const CHAT: &str = "/v1/chat/completions";

#[tokio::test]
async fn sigterm_under_load_completes_in_flight_streams_and_refuses_new_connections() {
    let reference = mocker(&[]).await.unwrap();
    let m = mocker(&["--itl-ms", "15"]).await.unwrap();
    let mut fe = frontend_over("probe:\n  interval_ms: 0\n", &[&m], &[]).await;
    let reqs: Vec<_> = (0..6)
        .map(|i| chat(&format!("drain {i}"), 40, true))
        .collect();
    let expected = join_all(reqs.iter().map(|r| expected_text(&reference, CHAT, r))).await;
    let base = fe.url();
    let tasks: Vec<_> = reqs
        .iter()
        .map(|r| {
            let (base, r) = (base.clone(), r.clone());
            tokio::spawn(async move { stream(&base, CHAT, &r).await })
        })
        .collect();
    // Every stream is in flight (its worker answered) before the signal.
    let in_flight = wait_metric(
        &base,
        "switchyard_requests_in_flight",
        Duration::from_secs(10),
        |v| v >= 6.0,
    )
    .await;
    assert_eq!(in_flight, 6.0, "the streams never were all in flight");
    fe.signal(Signal::SIGTERM).unwrap();
    // The listener closes once the signal is handled: new connections are refused from
    // then on, while the six streams go on.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", fe.port)).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "new connections were still accepted 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (task, expected) in tasks.into_iter().zip(&expected) {
        let outcome = task.await.unwrap();
        assert!(
            outcome.done() && outcome.error().is_none(),
            "{:?}",
            outcome.events
        );
        assert_eq!(&outcome.text(), expected);
    }
    assert!(fe.wait_exit(Duration::from_secs(10)).await.unwrap());
}

#[tokio::test]
async fn during_the_drain_delay_health_is_503_and_live_is_200() {
    let m = mocker(&[]).await.unwrap();
    let mut fe = frontend_over(
        "probe:\n  interval_ms: 0\nlimits:\n  drain_delay_ms: 1500\n  shutdown_grace_ms: 2000\n",
        &[&m],
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/health", fe.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    fe.signal(Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut status = 200;
    while status == 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A fresh connection each time: keep-alive is refused while draining.
        status = reqwest::Client::new()
            .get(format!("{}/health", fe.url()))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
    }
    assert_eq!(status, 503, "/health did not turn 503 on SIGTERM");
    let live = reqwest::Client::new()
        .get(format!("{}/live", fe.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert!(fe.wait_exit(Duration::from_secs(10)).await.unwrap());
}

#[tokio::test]
async fn a_slowloris_is_closed_at_the_header_timeout_while_others_are_served() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend_over(
        "probe:\n  interval_ms: 0\nlimits:\n  header_read_timeout_ms: 400\n",
        &[&m],
        &[],
    )
    .await;
    let slow = TcpStream::connect(("127.0.0.1", fe.port)).await.unwrap();
    let (mut reader, mut writer) = slow.into_split();
    writer
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header byte every 100 ms for 60 s: the headers never finish while we watch, and
    // they stay far below the header size limit, so only the header read timeout can end
    // the connection.
    let trickle = tokio::spawn(async move {
        for _ in 0..600 {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let closed = async {
        let mut buf = [0u8; 256];
        // The bound only ends the wait (10 s, well before the trickle could finish).
        match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
            Ok(Ok(n)) => {
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                if head.starts_with("HTTP/1.1 408") {
                    Ok(())
                } else {
                    Err(format!("unexpected answer: {head}"))
                }
            }
            Err(_) => Err("still open after 10 s".to_owned()),
        }
    };
    let others = async {
        let mut ok = 0;
        for i in 0..5 {
            let r = reqwest::Client::new()
                .post(format!("{}{CHAT}", fe.url()))
                .json(&chat(&format!("{i}"), 2, false))
                .send()
                .await;
            ok += usize::from(r.is_ok_and(|r| r.status() == 200));
        }
        ok
    };
    let (closed, ok) = tokio::join!(closed, others);
    trickle.abort();
    assert_eq!(closed, Ok(()), "the slow connection was not closed");
    assert_eq!(ok, 5, "other clients were not served meanwhile");
}

#[tokio::test]
async fn a_stream_still_open_when_the_grace_ends_gets_an_error_event_and_done() {
    use futures_util::StreamExt;
    // 400 tokens at 50 ms each: far longer than the 300 ms grace.
    let m = mocker(&["--itl-ms", "50"]).await.unwrap();
    let mut fe = frontend_over(
        "probe:\n  interval_ms: 0\nlimits:\n  shutdown_grace_ms: 300\n",
        &[&m],
        &[],
    )
    .await;
    let resp = reqwest::Client::new()
        .post(format!("{}{CHAT}", fe.url()))
        .json(&chat("cut at the grace", 400, true))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    // Shut down once the stream is flowing.
    while !text.contains("data: ") {
        let chunk = body.next().await.expect("the stream ended early").unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    fe.signal(Signal::SIGTERM).unwrap();
    while let Some(Ok(chunk)) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = switchyard_tests::http::sse_data(&text);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "cut without [DONE]: {events:?}"
    );
    let error = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .find(|v| v.get("error").is_some())
        .unwrap_or_else(|| panic!("no in-band error event: {events:?}"));
    assert_eq!(error["error"]["code"], "shutting_down", "{error}");
    assert!(fe.wait_exit(Duration::from_secs(10)).await.unwrap());
}
