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

#[tokio::test]
async fn the_bad_input_table_is_all_4xx() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend_over("probe:\n  interval_ms: 0\n", &[&m], &[]).await;
    let deep = format!(
        r#"{{"model":"mock-model","messages":[{{"role":"user","content":"x"}}],"x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let msg = r#""messages":[{"role":"user","content":"x"}]"#;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("array", b"[1,2,3]".to_vec()),
        ("string", br#""hello""#.to_vec()),
        ("number", b"42".to_vec()),
        ("null", b"null".to_vec()),
        ("empty", Vec::new()),
        ("deep nesting", deep.into_bytes()),
        (
            "invalid utf-8",
            b"{\"model\":\"mock-\xff\xfe\",\"messages\":[]}".to_vec(),
        ),
        (
            "NaN",
            format!(r#"{{"model":"mock-model",{msg},"temperature":NaN}}"#).into_bytes(),
        ),
        (
            "huge float",
            format!(r#"{{"model":"mock-model",{msg},"max_tokens":1e400}}"#).into_bytes(),
        ),
        (
            "huge int",
            format!(r#"{{"model":"mock-model",{msg},"max_tokens":99999999999999999999999}}"#)
                .into_bytes(),
        ),
        (
            "negative",
            format!(r#"{{"model":"mock-model",{msg},"max_tokens":-1}}"#).into_bytes(),
        ),
        (
            "truncated",
            br#"{"model":"mock-model","messages":[{"#.to_vec(),
        ),
    ];
    for (name, body) in bodies {
        let status = post_raw(&fe.url(), body, &[]).await;
        assert!((400..500).contains(&status), "{name}: {status}");
    }
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
