//! The official `openai` npm client streams a Responses request through the frontend
//! (tests/js, installed by `scripts/bootstrap.sh`).

use std::path::Path;
use std::process::Command;

use crate::agent_apis::frontend_over_one_mocker;
use crate::MODEL;

#[tokio::test]
async fn the_openai_npm_client_streams_a_responses_request() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/js");
    assert!(
        Path::new(dir).join("node_modules/openai").is_dir(),
        "the `openai` npm package is missing: run `scripts/bootstrap.sh` (or `npm ci --prefix tests/js`)"
    );
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    let base = format!("{}/v1", fe.url());
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
