//! The Prometheus series the frontend promises (docs/metrics.md) move as requests go through.

use switchyard_tests::http::post_json;
use switchyard_tests::{frontend, mocker, worker_flags};

use crate::{chat, MODEL};

/// The value of exactly `series` (name plus labels as rendered), or `None` when absent.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(key, _)| *key == series)
        .and_then(|(_, v)| v.parse().ok())
}

async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn request_token_latency_and_per_worker_series_move() {
    let w = mocker(&["--itl-ms", "2"]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&w])).await.unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    for stream in [true, true, false, false] {
        let (status, _, _) = post_json(&url, &chat("count me", 5, stream), &[])
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let (status, _, _) = post_json(
        &url,
        &serde_json::json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 404);

    let text = scrape(&fe.url()).await;
    // A scraper's reading: every line parses, every sample has a family with HELP and TYPE.
    switchyard_runtime::exposition::check(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let m = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no series {s}:\n{text}"));
    let model = format!("model=\"{MODEL}\"");
    assert_eq!(
        m(&format!(
            "switchyard_requests_total{{{model},route=\"chat_completions\",status=\"200\"}}"
        )),
        4.0
    );
    assert_eq!(
        m("switchyard_requests_total{model=\"_unknown\",route=\"chat_completions\",status=\"404\"}"),
        1.0,
        "unknown models share one label value"
    );
    // TTFT is observed for streams; every streamed token after the first is an ITL sample.
    assert_eq!(
        m(&format!(
            "switchyard_time_to_first_token_seconds_count{{{model}}}"
        )),
        2.0
    );
    assert!(
        m(&format!(
            "switchyard_inter_token_latency_seconds_count{{{model}}}"
        )) >= 8.0
    );
    assert_eq!(
        m(&format!(
            "switchyard_request_duration_seconds_count{{{model}}}"
        )),
        4.0
    );
    assert_eq!(
        m(&format!("switchyard_output_tokens_total{{{model}}}")),
        20.0
    );
    assert!(m(&format!("switchyard_input_tokens_total{{{model}}}")) > 0.0);
    assert_eq!(m("switchyard_requests_in_flight"), 0.0);

    // While a stream is open, the frontend and the worker each count it in flight.
    let open = reqwest::Client::new()
        .post(&url)
        .json(&chat("long", 400, true))
        .send()
        .await
        .unwrap();
    let worker = open.headers()["x-switchyard-instance"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = scrape(&fe.url()).await;
    let m = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no series {s}:\n{text}"));
    assert_eq!(m("switchyard_requests_in_flight"), 1.0);
    assert_eq!(
        m(&format!(
            "switchyard_instance_in_flight{{worker=\"{worker}\",{model}}}"
        )),
        1.0
    );
    assert_eq!(
        m(&format!(
            "switchyard_instance_healthy{{worker=\"{worker}\",{model}}}"
        )),
        1.0
    );
    drop(open);
}

/// One JSON access-log line per request (docs/metrics.md, "Access log"), with the request id
/// the client saw, the instance that answered and the stream's figures.
#[tokio::test]
async fn every_request_leaves_one_json_access_log_line() {
    let w = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&w])).await.unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    let response = reqwest::Client::new()
        .post(&url)
        .json(&chat("log me", 4, true))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let instance = response.headers()["x-switchyard-instance"]
        .to_str()
        .unwrap()
        .to_owned();
    response.text().await.unwrap();
    // The line is written when the stream's bookkeeping ends; wait for it to reach the log.
    let line = crate::distributed::eventually(
        std::time::Duration::from_secs(10),
        "the access line",
        || {
            let line = fe
                .log_text()
                .lines()
                .find(|l| l.contains(&request_id))
                .map(str::to_owned);
            async move { line }
        },
    )
    .await;
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["route"], "chat_completions");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["instance"], instance.as_str());
    assert_eq!(v["status"], 200);
    assert_eq!(v["output_tokens"], 4);
    assert!(v["ttft_ms"].as_f64().unwrap() > 0.0, "{line}");
    assert!(v["duration_ms"].as_f64().unwrap() >= v["ttft_ms"].as_f64().unwrap());
    assert_eq!(v["retries"], 0);
    assert_eq!(v["migrations"], 0);
}
