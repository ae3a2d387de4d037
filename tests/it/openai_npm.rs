//! The official `openai` npm client streams a Responses request through the frontend
//! (tests/js, installed by `scripts/bootstrap.sh`): translated onto a chat worker, and
//! relayed natively to a worker that serves the Responses API itself.

use std::path::Path;
use std::process::Command;

use crate::agent_apis::frontend_over_one_mocker;
use crate::agent_native::{frontend_over, route_count};
use crate::MODEL;

/// Runs tests/js/openai_responses_stream.mjs against `base`; it exits non-zero on the first
/// mismatch and prints "ALL OK" when every check passed.
async fn run_script(base: String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/js");
    assert!(
        Path::new(dir).join("node_modules/openai").is_dir(),
        "the `openai` npm package is missing: run `scripts/bootstrap.sh` (or `npm ci --prefix tests/js`)"
    );
    let script = format!("{dir}/openai_responses_stream.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node").args([&script, &base, MODEL]).output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ALL OK"), "{stdout}");
}

#[tokio::test]
async fn the_openai_npm_client_streams_a_responses_request() {
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    run_script(format!("{}/v1", fe.url())).await;
}

#[tokio::test]
async fn the_openai_npm_client_streams_a_responses_request_from_a_native_worker() {
    let (m, fe) = frontend_over(true, &[]).await;
    run_script(format!("{}/v1", fe.url())).await;
    assert!(route_count(&m, "responses").await >= 3.0);
    assert_eq!(
        route_count(&m, "chat").await,
        0.0,
        "every request of the script went natively"
    );
}
