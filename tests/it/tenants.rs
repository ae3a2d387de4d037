//! Tenants at the edge (#12): API keys, model lists, request and token limits, the
//! rate-limit headers, Anthropic-shaped refusals on `/v1/messages`, and reloading the
//! tenants file — against real frontend and mocker processes.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{frontend, mocker, worker_flags, Proc};

use crate::{chat, MODEL};

pub(crate) fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts a mocker and a frontend whose tenants come from a file (returned for rewriting).
async fn with_tenants(yaml: &str) -> (Proc, Proc, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.yaml");
    std::fs::write(&path, yaml).unwrap();
    let m = mocker(&[]).await.unwrap();
    let mut flags = worker_flags(MODEL, &[&m]);
    flags.extend(["--tenants".to_owned(), path.display().to_string()]);
    let fe = frontend(&flags).await.unwrap();
    (m, fe, dir, path)
}

pub(crate) async fn chat_as(
    fe: &Proc,
    key: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let auth = format!("Bearer {key}");
    post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        body,
        &[("authorization", &auth)],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_openai_client_raises_its_typed_errors_for_tenants() {
    let yaml = format!(
        "tenants:\n  - id: limited\n    key_sha256: {}\n    models: ['mock-*']\n    limits: {{requests_per_second: 0.001, burst: 2}}\n  - id: other\n    key_sha256: {}\n    models: ['other-*']\n",
        sha256_hex("sk-limited"),
        sha256_hex("sk-other")
    );
    let (_m, fe, _dir, _) = with_tenants(&yaml).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/tenants_client.py");
    let out = tokio::task::spawn_blocking({
        let url = format!("{}/v1", fe.url());
        move || Command::new("python3").args([script, &url, MODEL]).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ALL OK"), "{stdout}");

    let text = reqwest::get(format!("{}/metrics", fe.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "switchyard_tenant_rate_limited_total{tenant=\"limited\",limit=\"requests\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("switchyard_tenant_requests_total{tenant=\"limited\",status=\"200\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("switchyard_tenant_auth_failures_total 1"),
        "{text}"
    );
    for secret in ["sk-limited", "sk-other", "sk-wrong"] {
        assert!(!text.contains(secret), "key in /metrics");
        assert!(!fe.log_text().contains(secret), "key in the log");
    }
}

#[tokio::test]
async fn messages_refusals_are_anthropic_shaped_and_x_api_key_works() {
    let yaml = format!(
        "- id: agent\n  key_sha256: {}\n  limits: {{requests_per_second: 0.001, burst: 1}}\n",
        sha256_hex("sk-agent")
    );
    let (_m, fe, _dir, _) = with_tenants(&yaml).await;
    let url = format!("{}/v1/messages", fe.url());
    let body =
        json!({"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, err) = post_json(&url, &body, &[("x-api-key", "nope")])
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["error"]["type"], "authentication_error", "{err}");

    let (status, headers, ok) = post_json(&url, &body, &[("x-api-key", "sk-agent")])
        .await
        .unwrap();
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["type"], "message", "{ok}");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");

    let (status, headers, err) = post_json(&url, &body, &[("x-api-key", "sk-agent")])
        .await
        .unwrap();
    assert_eq!(status, 429, "{err}");
    assert_eq!(err["error"]["type"], "rate_limit_error", "{err}");
    assert!(headers.contains_key("retry-after"));
    assert!(headers.contains_key("x-ratelimit-reset-requests"));
}

#[tokio::test]
async fn token_limits_count_the_usage_engines_report_for_streams() {
    // 60 tokens a minute refill at 1 a second: after a streamed request that used its
    // prompt plus 40 tokens, a request reserving 60 must wait tens of seconds.
    let yaml = format!(
        "- id: streamer\n  key_sha256: {}\n  limits: {{tokens_per_minute: 60}}\n",
        sha256_hex("sk-stream")
    );
    let (_m, fe, _dir, _) = with_tenants(&yaml).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .bearer_auth("sk-stream")
        .json(&chat("count me", 40, true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ratelimit-limit-tokens"], "60");
    let text = resp.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    // The client did not ask for usage; the frontend still counts what the engine reported.
    assert!(!text.contains("\"usage\""), "{text}");

    let base = fe.url();
    let output = metric(
        &base,
        "switchyard_tenant_tokens_total{tenant=\"streamer\",direction=\"output\"}",
    )
    .await;
    assert_eq!(output, 40.0);
    let input = metric(
        &base,
        "switchyard_tenant_tokens_total{tenant=\"streamer\",direction=\"input\"}",
    )
    .await;
    assert!(input > 0.0, "prompt tokens counted");

    let (status, headers, err) = chat_as(&fe, "sk-stream", &chat("more", 60, false)).await;
    assert_eq!(status, 429, "{err}");
    assert_eq!(err["error"]["type"], "tokens", "{err}");
    assert_eq!(err["error"]["code"], "rate_limit_exceeded", "{err}");
    let remaining: u64 = headers["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining < 60, "remaining {remaining}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
}

#[tokio::test]
async fn the_tenants_file_reloads_and_a_bad_one_is_kept_out() {
    let v1 = format!("- id: team\n  key_sha256: {}\n", sha256_hex("sk-one"));
    let (_m, fe, _dir, path) = with_tenants(&v1).await;
    let body = chat("hi", 2, false);
    assert_eq!(chat_as(&fe, "sk-one", &body).await.0, 200);
    assert_eq!(chat_as(&fe, "sk-two", &body).await.0, 401);

    // Rotate the key: the new file (also a different size) is picked up without a restart.
    let v2 = format!(
        "tenants:\n  - id: team\n    key_sha256: {}\n",
        sha256_hex("sk-two")
    );
    std::fs::write(&path, v2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while chat_as(&fe, "sk-two", &body).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "reload not seen:\n{}",
            fe.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(chat_as(&fe, "sk-one", &body).await.0, 401);

    // A broken file: the running list stays, and the log says why.
    std::fs::write(&path, "- id: team\n  key_sha256: not-a-digest-at-all\n").unwrap();
    let series = "switchyard_tenants_reloads_total{result=\"error\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&fe.url(), series).await < 1.0 {
        assert!(Instant::now() < deadline, "bad reload not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(chat_as(&fe, "sk-two", &body).await.0, 200);
    let log = fe.log_text();
    assert!(
        log.contains("keeping the running list") && log.contains("key_sha256"),
        "{log}"
    );
}

/// The tenant id (never the key) names the caller in an explained decision and in the
/// request's access-log line.
#[tokio::test]
async fn explain_output_and_the_access_log_name_the_tenant() {
    const ADMIN: &str = "tenants-admin-token";
    const EXPLAIN: &str = "tenants-explain-token";
    let m = mocker(&[]).await.unwrap();
    let yaml = format!(
        "admin_token: {ADMIN}\ntenants:\n  - id: team-x\n    key_sha256: {}\n",
        sha256_hex("sk-team-x")
    );
    let mut flags = worker_flags(MODEL, &[&m]);
    flags.extend(["--explain-token".to_owned(), EXPLAIN.to_owned()]);
    let (fe, _dir) = switchyard_tests::frontend_with_config(&yaml, &flags)
        .await
        .unwrap();
    let (status, headers, body) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("who am i", 2, false),
        &[
            ("authorization", "Bearer sk-team-x"),
            ("x-switchyard-explain", EXPLAIN),
        ],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    let explained = fe.admin_json(&format!("/admin/explain/{id}"), ADMIN).await;
    assert_eq!(explained["tenant"], "team-x", "{explained}");
    let line = crate::distributed::eventually(Duration::from_secs(10), "the access line", || {
        let log = fe.log_text();
        let line = log
            .lines()
            .find(|l| l.contains(&id) && l.contains("\"route\""))
            .map(str::to_owned);
        async move { line }
    })
    .await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["tenant"], "team-x", "{line}");
    assert!(
        !fe.log_text().contains("sk-team-x"),
        "the key is never logged"
    );
}
