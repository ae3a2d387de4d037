//! The fault-injection suite: real frontend and mocker processes on loopback, faults injected
//! with signals (SIGKILL, SIGSTOP, SIGTERM) and the mocker's fault knobs. Every test asserts
//! outcomes (texts, statuses, error events, metrics); waits are bounded by deadlines.

mod bad_input;
mod failover;
mod hostile;
mod memory;
mod migration;
mod migration_chat;
mod migration_stop;
mod overload;
mod shutdown;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use switchyard_tests::http::{post_json, response_text, sse_data, stream_text};
use switchyard_tests::{frontend_with_config, worker_flags, Proc};

use crate::MODEL;

/// Starts a frontend over `workers` with a YAML config; the temp dir may go once it is up.
pub async fn frontend_over(yaml: &str, workers: &[&Proc], extra: &[&str]) -> Proc {
    let mut args = worker_flags(MODEL, workers);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    frontend_with_config(yaml, &args)
        .await
        .map(|(p, _dir)| p)
        .unwrap()
}

/// A finished client stream.
#[derive(Debug)]
pub struct Streamed {
    pub status: u16,
    pub events: Vec<String>,
}

impl Streamed {
    pub fn text(&self) -> String {
        stream_text(&self.events)
    }

    pub fn done(&self) -> bool {
        self.events.last().map(String::as_str) == Some("[DONE]")
    }

    /// The in-band error event, if any.
    pub fn error(&self) -> Option<Value> {
        self.events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .find(|v| v.get("error").is_some())
    }
}

/// Streams `body` to `path` on `base` and reads it to the end.
pub async fn stream(base: &str, path: &str, body: &Value) -> Streamed {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let Ok(resp) = resp else {
        return Streamed {
            status: 0,
            events: Vec::new(),
        };
    };
    let status = resp.status().as_u16();
    let mut text = String::new();
    let mut body = resp.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    Streamed {
        status,
        events: sse_data(&text),
    }
}

/// The text a healthy worker generates for `body` (sent non-streamed to `reference`).
pub async fn expected_text(reference: &Proc, path: &str, body: &Value) -> String {
    let mut body = body.clone();
    body["stream"] = false.into();
    let (status, _, v) = post_json(&format!("{}{path}", reference.url()), &body, &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    response_text(&v)
}

/// Polls a Prometheus series on `base` until `pred` holds or `within` passes; returns the
/// last value.
pub async fn wait_metric(
    base: &str,
    series: &str,
    within: Duration,
    pred: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let v = switchyard_tests::http::metric(base, series).await;
        if pred(v) || Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `health` of instance `id` in `/admin/instances` (the frontend needs `--admin-token`).
/// Panics when the admin API fails or does not list `id`: an unreadable state must never
/// pass for a changed one.
pub async fn admin_health(fe: &Proc, id: &str) -> String {
    let resp = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("GET /admin/instances failed");
    assert_eq!(resp.status(), 200, "GET /admin/instances");
    let v: Value = resp.json().await.expect("/admin/instances is not JSON");
    v["instances"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["id"] == id))
        .and_then(|i| i["health"].as_str())
        .unwrap_or_else(|| panic!("/admin/instances does not list {id}: {v}"))
        .to_owned()
}

/// Polls `admin_health` until it equals `want` or `within` passes; returns the last state.
pub async fn wait_health(fe: &Proc, id: &str, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let state = admin_health(fe, id).await;
        if state == want || Instant::now() >= deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const ADMIN_TOKEN: &str = "faults-admin-token";

/// The instance id the frontend gives a mocker (its `host:port`).
pub fn id_of(p: &Proc) -> String {
    p.url().trim_start_matches("http://").to_owned()
}
