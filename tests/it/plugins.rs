//! Wasm plugins on the data path: each kind end to end, Python and JavaScript plugins,
//! hot swap under load, adversarial plugins under both failure policies, the admin API,
//! shadow mode, explanations and replay.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{frontend, frontend_slow, frontend_with_config, mocker, worker_flags, Proc};

use crate::{chat, MODEL};

pub const TOKEN: &str = "test-admin-token";
/// Data-plane clients ask for explanations with this, never with the admin token.
pub const EXPLAIN: &str = "test-explain-token";

/// Path of a built plugin; fails with instructions when the plugins were not built.
pub fn wasm(name: &str) -> String {
    let path = format!(
        "{}/../plugins/target/wasm/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    assert!(
        std::path::Path::new(&path).is_file(),
        "{path} is missing: run `scripts/build-plugins.sh` (make test does)"
    );
    path
}

pub fn admin(fe: &Proc, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(format!("{}{path}", fe.admin_url()))
        .bearer_auth(TOKEN)
}

pub async fn plugins_view(fe: &Proc) -> HashMap<String, Value> {
    let v: Value = admin(fe, "/admin/plugins")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

pub async fn mockers(n: usize, extra: &[&str]) -> Vec<Proc> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(mocker(extra).await.unwrap());
    }
    v
}

pub fn args_with(mockers: &[Proc], extra: &[String]) -> Vec<String> {
    let refs: Vec<&Proc> = mockers.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--admin-token".to_owned(), TOKEN.to_owned()]);
    args.extend(["--explain-token".to_owned(), EXPLAIN.to_owned()]);
    args.extend(extra.iter().cloned());
    args
}

/// Sequential requests; counts the instances that served them.
async fn send(fe: &Proc, n: usize) -> HashMap<String, usize> {
    crate::spread(fe, n, None).await
}

#[tokio::test]
async fn a_rust_picker_routes_every_request() {
    let m = mockers(3, &[]).await;
    let fe = frontend(&args_with(
        &m,
        &["--plugin".into(), format!("picker={}", wasm("round-robin"))],
    ))
    .await
    .unwrap();
    let counts = send(&fe, 30).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&c| c >= 5), "{counts:?}");
    // Every decision was the plugin's: called for each request, never faulted, never
    // replaced by the native policy.
    let view = admin(&fe, "/admin/plugins/round-robin")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(view["calls"].as_u64().unwrap() >= 30, "{view}");
    assert_eq!(view["fallbacks"], 0, "{view}");
    assert!(view["faults"].as_object().unwrap().is_empty(), "{view}");
}

#[tokio::test]
async fn a_filter_plugin_keeps_only_matching_instances() {
    let m = mockers(3, &[]).await;
    let workers: String = m
        .iter()
        .enumerate()
        .map(|(n, w)| {
            let pool = if n == 1 { "canary" } else { "main" };
            format!(
                "  - {{ model: {MODEL}, url: \"{}\", labels: {{ pool: {pool} }} }}\n",
                w.url()
            )
        })
        .collect();
    let yaml = format!(
        // Probes off: on a loaded run a timed-out probe of the canary worker left no instance
        // for the filter to keep (503 `filtered_out`), in a test about filtering.
        "admin_token: {TOKEN}\nprobe:\n  interval_ms: 0\nworkers:\n{workers}plugins:\n  - name: canary-only\n    kind: filter\n    path: {}\n    config: {{ match: {{ pool: canary }} }}\n",
        wasm("label-selector")
    );
    let (fe, _dir) = frontend_with_config(&yaml, &[]).await.unwrap();
    let counts = send(&fe, 12).await;
    assert_eq!(
        counts.len(),
        1,
        "the filter let other pools through: {counts:?}"
    );
    let canary = admin(&fe, "/admin/instances")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let canary_id = canary["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["url"] == m[1].url())
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(counts.get(&canary_id), Some(&12), "{counts:?}");
    let view = plugins_view(&fe).await;
    assert_eq!(view["canary-only"]["fallbacks"], 0, "{view:?}");
}

#[tokio::test]
async fn a_rust_scorer_steers_away_from_a_busy_instance() {
    let m = mockers(2, &["--itl-ms", "40"]).await;
    let fe = frontend(&args_with(
        &m,
        &[
            "--plugin".into(),
            format!("scorer={}", wasm("least-loaded")),
        ],
    ))
    .await
    .unwrap();
    // Occupy one instance with a long stream, then every short request must avoid it.
    let busy = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&chat("long", 200, true))
        .send()
        .await
        .unwrap();
    let busy_id = busy.headers()["x-switchyard-instance"]
        .to_str()
        .unwrap()
        .to_owned();
    let counts = send(&fe, 6).await;
    assert!(
        !counts.contains_key(&busy_id),
        "least-loaded scorer sent traffic to the busy instance: {counts:?}"
    );
    drop(busy);
}

#[tokio::test]
async fn a_health_policy_plugin_removes_a_failing_instance() {
    let bad = mocker(&["--status", "500"]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    // Built-in ejection effectively off (threshold 1000) and no probe: only the plugin decides.
    let yaml = format!(
        "health:\n  failure_threshold: 1000\nprobe:\n  interval_ms: 0\nrouting:\n  policy: round-robin\nplugins:\n  - name: cf\n    kind: health\n    path: {}\n    config: {{\"threshold\": 3}}\n",
        wasm("consecutive-failures")
    );
    let mut args = worker_flags(MODEL, &[&bad, &good]);
    args.extend(["--admin-token".to_owned(), TOKEN.to_owned()]);
    let (fe, _dir) = frontend_with_config(&yaml, &args).await.unwrap();
    send(&fe, 10).await; // all succeed: failures on `bad` are retried on `good`
    let bad_id = bad.url().trim_start_matches("http://").to_owned();
    let series = format!("switchyard_instance_healthy{{worker=\"{bad_id}\",model=\"{MODEL}\"}}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&fe.url(), &series).await != 0.0 {
        assert!(
            Instant::now() < deadline,
            "the health policy never marked {bad_id} unhealthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retries = metric(&fe.url(), "switchyard_retries_total").await;
    let counts = send(&fe, 10).await;
    assert!(!counts.contains_key(&bad_id), "{counts:?}");
    assert_eq!(
        metric(&fe.url(), "switchyard_retries_total").await,
        retries,
        "requests still reached the bad instance"
    );
}

#[tokio::test]
async fn python_scorer_and_javascript_picker_route_real_requests() {
    let m = mockers(2, &[]).await;
    let fe = frontend_slow(&args_with(
        &m,
        &[
            "--plugin".into(),
            format!("scorer={}", wasm("latency-aware")),
            "--plugin".into(),
            format!("picker={}", wasm("least-busy")),
        ],
    ))
    .await
    .unwrap();
    send(&fe, 12).await;
    let view = plugins_view(&fe).await;
    for name in ["latency-aware", "least-busy"] {
        assert!(
            view[name]["calls"].as_u64().unwrap() >= 12,
            "{name}: {:?}",
            view[name]
        );
        assert_eq!(
            view[name]["fallbacks"], 0,
            "{name} fell back: {:?}",
            view[name]
        );
    }
}

/// PUT a component through the admin API and wait for the load (`wait=true`: 200 when it
/// is installed, 400 naming why not); `plugin_upload.rs` tests the default 202 path.
pub async fn upload(
    fe: &Proc,
    name: &str,
    file: &str,
    query: &str,
    token: Option<&str>,
    sha: Option<String>,
) -> (u16, Value) {
    let bytes = std::fs::read(file).unwrap();
    let sha = sha.unwrap_or_else(|| sha256_hex(&bytes));
    let mut req = reqwest::Client::new()
        .put(format!(
            "{}/admin/plugins/{name}?sha256={sha}&wait=true&{query}",
            fe.admin_url()
        ))
        .body(bytes);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn admin_upload_needs_the_token_and_the_right_sha256() {
    let m = mockers(1, &[]).await;
    let fe = frontend(&args_with(&m, &[])).await.unwrap();
    let rr = wasm("round-robin");
    let (status, _) = upload(&fe, "rr", &rr, "kind=picker", None, None).await;
    assert_eq!(status, 401, "upload without a token must be refused");
    let (status, body) = upload(
        &fe,
        "rr",
        &rr,
        "kind=picker",
        Some(TOKEN),
        Some("0".repeat(64)),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "sha256_mismatch");
    assert!(
        plugins_view(&fe).await.is_empty(),
        "a refused upload must not load anything"
    );
    let (status, body) = upload(
        &fe,
        "rr",
        &wasm("least-loaded"),
        "kind=picker",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        status, 400,
        "a scorer uploaded as a picker must be refused: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("picker"),
        "{body}"
    );
    let (status, body) = upload(&fe, "rr", &rr, "kind=picker", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    send(&fe, 3).await;
    assert!(plugins_view(&fe).await["rr"]["calls"].as_u64().unwrap() >= 3);
    let resp = reqwest::Client::new()
        .delete(format!("{}/admin/plugins/rr", fe.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(plugins_view(&fe).await.is_empty());
}

/// Sends one explained request and returns which of `shas` decided it (`None` when the
/// decision fell back to the native policy).
async fn decided_by(fe: &Proc, url: &str, shas: &[String]) -> Option<usize> {
    let resp = reqwest::Client::new()
        .post(url)
        .header("x-switchyard-explain", EXPLAIN)
        .json(&chat("probe", 2, false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let e: Value = admin(fe, &format!("/admin/explain/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stage = &e["stages"][0];
    if stage["fell_back"] == true {
        return None;
    }
    let sha = stage["sha256"].clone();
    Some(
        shas.iter()
            .position(|s| sha == s.as_str())
            .unwrap_or_else(|| panic!("decided by neither version: {e}")),
    )
}

#[tokio::test]
async fn hot_swap_100_times_under_load_fails_nothing() {
    let m = mockers(3, &[]).await;
    let fe = frontend(&args_with(&m, &[])).await.unwrap();
    // Two versions that route differently: round-robin, and all-kinds (reverse order).
    let paths = [wasm("round-robin"), wasm("testing-all-kinds")];
    let shas: Vec<String> = paths
        .iter()
        .map(|p| sha256_hex(&std::fs::read(p).unwrap()))
        .collect();
    let versions = [paths[0].clone(), paths[1].clone()];
    // A generous decision budget: this test is about swaps. On a starved machine a 10 ms budget
    // times out or overruns, and enough of either quarantines the version (plugin_quarantine),
    // which hides which version decided.
    const BUDGET: &str = "decisionBudget=2s";
    let (status, body) = upload(
        &fe,
        "swap",
        &versions[0],
        &format!("kind=picker&{BUDGET}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = format!("{}/v1/chat/completions", fe.url());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..8 {
        let (url, stop) = (url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut served, mut failed) = (Vec::new(), Vec::new());
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let stream = i % 2 == 0;
                let resp = client
                    .post(&url)
                    .header("x-switchyard-explain", EXPLAIN)
                    .json(&chat(&format!("w{w} r{i}"), 4, stream))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => {
                        let header = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
                        let (id, instance) =
                            (header("x-request-id"), header("x-switchyard-instance"));
                        let text = r.text().await.unwrap_or_default();
                        if stream && !text.trim_end().ends_with("data: [DONE]")
                            || text.contains("\"error\"")
                        {
                            failed.push(text);
                        } else {
                            served.push((id, instance));
                        }
                    }
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (served, failed)
        }));
    }
    // Every fifth swap (both versions), a probe request right after the PUT returned: the version just
    // installed decides it. (The load's own last requests can all fall after one swap on a
    // starved machine, so they cannot show that both versions decided.)
    let mut probed = [0usize; 2];
    for swap in 0..100 {
        let (status, body) = upload(
            &fe,
            "swap",
            &versions[(swap + 1) % 2],
            BUDGET,
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "swap {swap}: {body}");
        if swap % 5 == 0 {
            if let Some(version) = decided_by(&fe, &url, &shas).await {
                assert_eq!(
                    version,
                    (swap + 1) % 2,
                    "swap {swap}: the old version decided"
                );
                probed[version] += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut served = Vec::new();
    for task in load {
        let (ok, failed) = task.await.unwrap();
        assert!(
            failed.is_empty(),
            "requests failed during swaps: {:?}",
            &failed[..failed.len().min(3)]
        );
        // The explanation ring keeps the last 512: check each worker's most recent requests.
        served.extend(ok.into_iter().rev().take(40));
    }
    assert!(
        served.len() >= 100,
        "only {} requests ran during the swaps",
        served.len()
    );
    // Each request was decided by exactly one of the two versions, named by its sha256, and
    // routed the way that version decides (all-kinds ranks the candidates in reverse).
    let mut seen = [0usize; 2];
    for (id, instance) in &served {
        let resp = admin(&fe, &format!("/admin/explain/{id}"))
            .send()
            .await
            .unwrap();
        if resp.status() == 404 {
            continue; // already rotated out of the ring
        }
        let e: Value = resp.json().await.unwrap();
        let stages = e["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 1, "{e}");
        if stages[0]["fell_back"] == true {
            continue; // a decision-budget timeout on a starved machine (see below)
        }
        let version = shas
            .iter()
            .position(|s| stages[0]["sha256"] == s.as_str())
            .unwrap_or_else(|| panic!("decided by neither version: {e}"));
        seen[version] += 1;
        assert_eq!(e["pick"][0], instance.as_str(), "{e}");
        if version == 1 {
            let last = e["candidates"].as_array().unwrap().last().unwrap();
            assert_eq!(
                e["pick"][0], last["instance"],
                "all-kinds ranks in reverse: {e}"
            );
        }
    }
    assert!(
        probed[0] > 0 && probed[1] > 0,
        "both versions decided the probes: {probed:?}"
    );
    assert!(
        seen[0] + seen[1] >= 100,
        "too few explanations checked: {seen:?}"
    );
    // Swapping itself never faults: the only tolerated faults are decision-budget timeouts
    // from CPU starvation on a loaded machine (wall-clock budget), which fail open.
    let view = plugins_view(&fe).await;
    let faults = view["swap"]["faults"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(faults.keys().all(|k| k == "timeout"), "{view:?}");
    assert_eq!(
        metric(&fe.url(), "switchyard_plugin_swaps_total{plugin=\"swap\"}").await,
        100.0
    );
}

/// (plugin file, kind) of every always-faulting adversarial plugin.
const ADVERSARIAL: &[(&str, &str)] = &[
    ("testing-infinite-loop", "picker"),
    ("testing-memory-bomb", "scorer"),
    ("testing-deep-recursion", "scorer"),
    ("testing-wrong-length", "scorer"),
    ("testing-nan-scores", "scorer"),
];

fn adversarial_yaml(policy: &str) -> String {
    let mut yaml = String::from(
        "plugin_quarantine:\n  faultThreshold: 2\n  initialBackoff: 300ms\n  maxBackoff: 2s\nplugins:\n",
    );
    for (name, kind) in ADVERSARIAL {
        // The memory bomb must hit its memory cap, not the clock: on a starved machine growing
        // 16 MiB can take longer than 20 ms of wall time.
        let budget = if *name == "testing-memory-bomb" {
            "2s"
        } else {
            "20ms"
        };
        yaml.push_str(&format!(
            "  - name: {name}\n    kind: {kind}\n    path: {}\n    failurePolicy: {policy}\n    limits:\n      decisionBudget: {budget}\n      memoryBytes: 16777216\n",
            wasm(name)
        ));
    }
    yaml
}

#[tokio::test]
async fn adversarial_plugins_fail_open_are_quarantined_and_retried() {
    let m = mockers(2, &[]).await;
    let (fe, _dir) = frontend_with_config(&adversarial_yaml("FailOpen"), &args_with(&m, &[]))
        .await
        .unwrap();
    send(&fe, 10).await; // every request is served by the native fallback
    let view = plugins_view(&fe).await;
    for (name, _) in ADVERSARIAL {
        let p = &view[*name];
        assert!(p["fallbacks"].as_u64().unwrap() >= 2, "{name}: {p}");
        assert!(
            p["quarantine"].as_str().unwrap().starts_with("quarantined"),
            "{name}: {p}"
        );
    }
    let expected_reason = [
        ("testing-infinite-loop", "timeout"),
        ("testing-memory-bomb", "memory_limit"),
        ("testing-deep-recursion", "trap"),
        ("testing-wrong-length", "invalid_output"),
        ("testing-nan-scores", "invalid_output"),
    ];
    for (name, reason) in expected_reason {
        assert!(
            view[name]["faults"][reason].as_u64().unwrap_or(0) >= 1,
            "{name}: {}",
            view[name]
        );
    }
    // After the backoff a trial call is let through; it faults again: a second strike.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        send(&fe, 2).await;
        let view = plugins_view(&fe).await;
        if ADVERSARIAL.iter().all(|(n, _)| {
            view[*n]["quarantine"]
                .as_str()
                .unwrap()
                .contains("strike 2")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "plugins were never retried after quarantine: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn adversarial_plugins_fail_closed_with_the_documented_error() {
    let m = mockers(1, &[]).await;
    for (name, kind) in ADVERSARIAL {
        let yaml = format!(
            "plugins:\n  - name: {name}\n    kind: {kind}\n    path: {}\n    failurePolicy: FailClosed\n    limits:\n      decisionBudget: 20ms\n      memoryBytes: 16777216\n",
            wasm(name)
        );
        let (fe, _dir) = frontend_with_config(&yaml, &args_with(&m, &[]))
            .await
            .unwrap();
        let (status, _, body) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &chat("x", 2, false),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "plugin_failed", "{name}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn shadow_disagreements_are_counted() {
    let m = mockers(3, &[]).await;
    let yaml = format!(
        "routing:\n  policy: round-robin\nplugins:\n  - name: first-in-order\n    kind: picker\n    mode: Shadow\n    path: {}\n",
        wasm("testing-all-kinds")
    );
    let (fe, _dir) = frontend_with_config(&yaml, &args_with(&m, &[]))
        .await
        .unwrap();
    send(&fe, 30).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let p = &plugins_view(&fe).await["first-in-order"];
        let (agree, disagree) = (
            p["shadow_agreements"].as_u64().unwrap(),
            p["shadow_disagreements"].as_u64().unwrap(),
        );
        if agree + disagree == 30 {
            // Round-robin picks the first candidate one time in three.
            assert_eq!(agree, 10, "{p}");
            assert_eq!(disagree, 20, "{p}");
            break;
        }
        assert!(Instant::now() < deadline, "shadow decisions missing: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(
            &fe.url(),
            "switchyard_plugin_shadow_disagreements_total{plugin=\"first-in-order\"}"
        )
        .await,
        20.0
    );
}

#[tokio::test]
async fn explain_shows_candidates_scores_and_the_pick() {
    let m = mockers(2, &[]).await;
    let fe = frontend(&args_with(
        &m,
        &[
            "--plugin".into(),
            format!("scorer={}", wasm("least-loaded")),
        ],
    ))
    .await
    .unwrap();
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
    assert_eq!(e["candidates"].as_array().unwrap().len(), 2, "{e}");
    assert_eq!(e["stages"][0]["plugin"], "least-loaded", "{e}");
    assert_eq!(e["stages"][0]["scores"].as_array().unwrap().len(), 2, "{e}");
    assert_eq!(
        e["pick"][0],
        headers["x-switchyard-instance"].to_str().unwrap(),
        "{e}"
    );
    // Without the explain token no explanation is recorded; the admin token is not one.
    let (_, headers, _) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("x", 2, false),
        &[("x-switchyard-explain", TOKEN)],
    )
    .await
    .unwrap();
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        admin(&fe, &format!("/admin/explain/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn recorded_decisions_replay_deterministically() {
    let m = mockers(3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("decisions.jsonl");
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
    send(&fe, 20).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("native:round-robin"))
        .count()
        < 20
    {
        assert!(Instant::now() < deadline, "trace incomplete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replay = || {
        let out = std::process::Command::new(switchyard_tests::switchyard_bin())
            .args([
                "plugin",
                "replay",
                &wasm("round-robin"),
                "--trace",
                &trace.display().to_string(),
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let (a, b) = (replay(), replay());
    assert_eq!(a, b, "replay is not deterministic");
    assert_eq!(a["decisions"].as_array().unwrap().len(), 20, "{a}");
    assert_eq!(a["compared"], 20, "{a}");
}

async fn plugin_sha(fe: &Proc, name: &str) -> String {
    let v: Value = admin(fe, &format!("/admin/plugins/{name}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["sha256"].as_str().unwrap_or_default().to_owned()
}

/// Polls until the plugin's sha256 is `want` (bounded: the watcher polls once a second).
async fn wait_for_sha(fe: &Proc, name: &str, want: &str) -> bool {
    for _ in 0..100 {
        if plugin_sha(fe, name).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_changed_plugin_file_is_reloaded_and_a_broken_one_is_not() {
    let m = mockers(3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("picker.wasm");
    let (v1, v2) = (
        std::fs::read(wasm("round-robin")).unwrap(),
        std::fs::read(wasm("testing-all-kinds")).unwrap(),
    );
    std::fs::write(&file, &v1).unwrap();
    let fe = frontend(&args_with(
        &m,
        &["--plugin".into(), format!("picker={}", file.display())],
    ))
    .await
    .unwrap();
    assert_eq!(plugin_sha(&fe, "picker").await, sha256_hex(&v1));

    std::fs::write(&file, &v2).unwrap();
    assert!(
        wait_for_sha(&fe, "picker", &sha256_hex(&v2)).await,
        "the changed file was not reloaded"
    );
    // all-kinds ranks in reverse: with nothing else changing, every request lands on the
    // last candidate.
    assert_eq!(send(&fe, 6).await.len(), 1);

    // A file that is not a component is refused; the running version keeps serving.
    std::fs::write(&file, b"not wasm").unwrap();
    // The watcher's next poll tries the new bytes and refuses them (it says so in the log).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !fe
        .log_text()
        .contains("plugin file changed but does not load; keeping the running version")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher never tried the broken file:\n{}",
            fe.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(plugin_sha(&fe, "picker").await, sha256_hex(&v2));
    assert_eq!(send(&fe, 3).await.values().sum::<usize>(), 3);
}

#[tokio::test]
async fn without_worker_events_plugins_see_the_prefixes_they_routed() {
    // No NATS: cached-prefix-blocks come from the approximate index, which learns from the
    // plugin chain's own decisions. The prefix-affinity scorer then keeps a shared prefix on
    // the instance that served it first (idle instances otherwise tie and rotate).
    let m = mockers(3, &[]).await;
    let fe = frontend(&args_with(
        &m,
        &[
            "--plugin".into(),
            format!("scorer={}", wasm("prefix-affinity")),
        ],
    ))
    .await
    .unwrap();
    let system = "You are a careful assistant. ".repeat(80);
    let mut homes = HashMap::new();
    for i in 0..6 {
        let body = serde_json::json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": format!("question {i}")},
            ],
            "max_tokens": 2,
        });
        let (status, h, _) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &body,
            &[("x-switchyard-explain", EXPLAIN)],
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        let id = h["x-switchyard-instance"].to_str().unwrap().to_owned();
        *homes.entry(id).or_insert(0) += 1;
        if i > 0 {
            let rid = h["x-request-id"].to_str().unwrap();
            let e: Value = admin(&fe, &format!("/admin/explain/{rid}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let most = e["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["cached_prefix_blocks"].as_u64().unwrap())
                .max()
                .unwrap();
            assert!(most > 10, "the shared prefix is not in the index: {e}");
        }
    }
    assert_eq!(homes.len(), 1, "the shared prefix moved: {homes:?}");
}
