//! `--die-after-tokens` ends the process, so it runs in a child: this test binary re-executes
//! itself with `MOCKER_DIE_CHILD` set, and the child serves a mocker that dies after 5 tokens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use http_body_util::BodyExt;
use switchyard_mocker::MockerArgs;

mod common;

const CHILD_ENV: &str = "MOCKER_DIE_CHILD";

/// The child's body; a no-op in a normal test run.
#[test]
fn die_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT {}", listener.local_addr().unwrap().port());
        let args = MockerArgs {
            die_after_tokens: Some(5),
            itl_ms: 1.0,
            ..MockerArgs::default()
        };
        switchyard_mocker::run(args, listener, std::future::pending()).await
    })
    .unwrap();
}

#[tokio::test]
async fn the_process_exits_mid_stream_after_the_nth_token() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["die_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let port: u16 = stdout
        .lines()
        .map_while(Result::ok)
        // libtest prints "test die_child ... " on the same line first.
        .find_map(|line| line.rsplit_once("PORT ")?.1.trim().parse().ok())
        .expect("the child prints its port");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let body = r#"{"model":"mock-model","prompt":"hello","max_tokens":10,"stream":true}"#;
    let resp = common::send_to(addr, "POST", "/v1/completions", body.to_owned()).await;
    let mut body = resp.into_body();
    let mut received = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            received.extend_from_slice(data);
        }
    }
    let text = String::from_utf8(received).unwrap();
    let events = common::sse_events(&text);
    assert_eq!(
        events.len(),
        5,
        "five tokens, then the connection dies: {text}"
    );
    assert!(!text.contains("[DONE]"));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(1));
}
