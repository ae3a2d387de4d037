//! The admin API's plugin settings (every YAML setting, unknown ones refused), per-version
//! metrics, explain's latency figures, and `plugin replay` against native decisions.

use serde_json::Value;
use switchyard_tests::http::post_json;
use switchyard_tests::{frontend, Proc};

use crate::chat;
use crate::plugins::{admin, args_with, mockers, plugins_view, upload, wasm, EXPLAIN, TOKEN};

async fn metrics_text(fe: &Proc) -> String {
    reqwest::get(format!("{}/metrics", fe.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_put_sets_every_setting_and_names_unknown_ones() {
    let m = mockers(1, &[]).await;
    let fe = frontend(&args_with(&m, &[])).await.unwrap();
    let ll = wasm("least-loaded");
    let (status, body) = upload(
        &fe,
        "ll",
        &ll,
        "kind=scorer&memoryByte=1&bogus=1",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "unknown_parameter", "{body}");
    assert_eq!(body["error"]["param"], "memoryByte", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`bogus`"), "{message}");
    assert!(plugins_view(&fe).await.is_empty(), "nothing may be loaded");

    let query = "kind=scorer&weight=2&order=3&failurePolicy=FailClosed&mode=Shadow\
                 &appliesTo=mock-model&config=%7B%22in_flight_weight%22%3A2%7D\
                 &memoryBytes=134217728&decisionBudget=20ms&limits=%7B%22maxIdleInstances%22%3A2%7D";
    let (status, body) = upload(&fe, "ll", &ll, query, Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    let view = &plugins_view(&fe).await["ll"];
    assert_eq!(view["sha256"], body["sha256"], "{view}");
    assert_eq!(
        (
            &view["weight"],
            &view["order"],
            &view["failure_policy"],
            &view["mode"]
        ),
        (
            &Value::from(2.0),
            &Value::from(3),
            &Value::from("FailClosed"),
            &Value::from("Shadow")
        ),
        "{view}"
    );
    assert_eq!(view["models"][0], "mock-model", "{view}");
    assert_eq!(view["config"]["in_flight_weight"], 2, "{view}");
    assert_eq!(view["limits"]["memoryBytes"], 134_217_728, "{view}");
    assert_eq!(view["limits"]["decisionBudget"], "20ms", "{view}");
    assert_eq!(view["limits"]["maxIdleInstances"], 2, "{view}");
    // The defaults the limits were not given are shown too.
    assert!(view["limits"]["initBudget"].is_string(), "{view}");
}

#[tokio::test]
async fn a_swap_keeps_both_versions_series_and_a_delete_removes_them() {
    let m = mockers(2, &[]).await;
    let fe = frontend(&args_with(&m, &[])).await.unwrap();
    let (status, first) = upload(
        &fe,
        "rr",
        &wasm("round-robin"),
        "kind=picker",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    crate::spread(&fe, 2, None).await;
    let (status, second) =
        upload(&fe, "rr", &wasm("testing-all-kinds"), "", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{second}");
    crate::spread(&fe, 2, None).await;
    let text = metrics_text(&fe).await;
    for sha in [&first["sha256"], &second["sha256"]] {
        let version = &sha.as_str().unwrap()[..12];
        let series = format!(
            "switchyard_plugin_call_duration_seconds_count{{plugin=\"rr\",version=\"{version}\"}} 2"
        );
        assert!(text.contains(&series), "{series} missing from\n{text}");
    }
    let resp = reqwest::Client::new()
        .delete(format!("{}/admin/plugins/rr", fe.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let text = metrics_text(&fe).await;
    assert!(
        !text.contains("plugin=\"rr\""),
        "a deleted plugin's series remain:\n{text}"
    );
}

#[tokio::test]
async fn explain_shows_latency_averages_and_health_after_non_streamed_requests() {
    let m = mockers(1, &["--ttft-ms", "5"]).await;
    let fe = frontend(&args_with(
        &m,
        &[
            "--plugin".into(),
            format!("scorer={}", wasm("least-loaded")),
        ],
    ))
    .await
    .unwrap();
    // The first request measures; the second one's explanation shows what it measured.
    crate::spread(&fe, 1, None).await;
    let (status, headers, _) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("x", 2, false),
        &[("x-switchyard-explain", EXPLAIN)],
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let id = headers["x-request-id"].to_str().unwrap();
    let e: Value = admin(&fe, &format!("/admin/explain/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let candidate = &e["candidates"][0];
    assert!(
        candidate["ttft_ewma_ms"].as_f64().unwrap() >= 5.0,
        "the mocker's 5 ms TTFT is not in the average: {e}"
    );
    assert!(candidate["itl_ewma_ms"].is_number(), "{e}");
    assert_eq!(candidate["health"], "healthy", "{e}");
}

/// Runs `switchyard plugin replay PLUGIN --trace TRACE [extra]`: (exit code, stdout).
fn replay(plugin: &str, trace: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(switchyard_tests::switchyard_bin())
        .args(["plugin", "replay", plugin, "--trace"])
        .arg(trace)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_scorer_replays_against_native_decisions_and_an_empty_replay_fails() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("decisions.jsonl");
    let m = mockers(3, &[]).await;
    let fe = frontend(&args_with(
        &m,
        &[
            "--policy".into(),
            "round-robin".into(),
            "--record-decisions".into(),
            trace.display().to_string(),
        ],
    ))
    .await
    .unwrap();
    crate::spread(&fe, 6, None).await;
    // The recorder writes on its own thread: wait for the six native decisions.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .matches("native:round-robin")
        .count()
        < 6
    {
        assert!(std::time::Instant::now() < deadline, "trace incomplete");
        tokio::task::yield_now().await;
    }
    let (code, out) = replay(&wasm("least-loaded"), &trace, &["--json"]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["decisions"].as_array().unwrap().len(), 6, "{report}");
    assert_eq!(report["compared"], 6, "{report}");
    assert_eq!(report["decisions"][0]["recordedKind"], "picker", "{report}");
    assert!(report["decisions"][0]["wouldPick"].is_array(), "{report}");

    // A trace of a picker plugin's decisions: nothing a scorer can replay, every record
    // skipped with its reason, and a failing exit code.
    let picker_trace = dir.path().join("picker.jsonl");
    let lines: String = std::fs::read_to_string(&trace)
        .unwrap()
        .replace("native:round-robin", "my-picker");
    std::fs::write(&picker_trace, lines).unwrap();
    let (code, out) = replay(&wasm("least-loaded"), &picker_trace, &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.matches("a picker decision by the plugin `my-picker`")
            .count(),
        6,
        "{out}"
    );
    assert!(out.contains("0 decisions replayed"), "{out}");
}
