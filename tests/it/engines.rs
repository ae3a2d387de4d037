//! Load read from the engines themselves (`load_scrape`): mockers speaking vLLM's, SGLang's,
//! TRT-LLM's and llama.cpp's metric dialects, no NATS. A queue another client built on one
//! worker must steer the frontend's own traffic away from it.

use std::time::Duration;

use nix::sys::signal::Signal;

use switchyard_tests::http::metric;
use switchyard_tests::{frontend_with_config, mocker, mocker_with_key, Proc};

use crate::distributed::eventually;
use crate::{chat, spread, MODEL};

const ADMIN: &str = "engines-admin-token";

/// Opens `n` long streams straight to `worker` (another client), so that with
/// `--max-running 1` all but one wait in its queue. Returned to keep them open.
async fn queue_on(worker: &Proc, n: usize) -> Vec<reqwest::Response> {
    let client = reqwest::Client::new();
    let mut held = Vec::new();
    for i in 0..n {
        let r = client
            .post(format!("{}/v1/chat/completions", worker.url()))
            .json(&chat(&format!("other client {i}"), 100_000, true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        held.push(r);
    }
    held
}

fn config(engine: &str, workers: &[&Proc]) -> String {
    let mut yaml = String::from(
        "routing:\n  policy: least-loaded\nevents:\n  load_scrape: {interval: 50ms, stale: 1s}\n\
         reliability:\n  probe: {interval: 0s}\n  canary: {idle: 0s}\nworkers:\n",
    );
    for (i, w) in workers.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{model: {MODEL}, url: \"{}\", id: w{i}, engine: {engine}}}\n",
            w.url()
        ));
    }
    yaml
}

#[tokio::test]
async fn a_queue_reported_in_each_engines_dialect_steers_traffic_away() {
    for engine in ["vllm", "sglang", "trtllm", "llamacpp"] {
        let flags = ["--engine", engine, "--max-running", "1", "--itl-ms", "5"];
        let busy = mocker(&flags).await.unwrap();
        let idle = mocker(&flags).await.unwrap();
        let (fe, _dir) = frontend_with_config(&config(engine, &[&busy, &idle]), &[])
            .await
            .unwrap();
        let _held = queue_on(&busy, 5).await;
        let series = "switchyard_instance_queued{worker=\"w0\"";
        eventually(
            Duration::from_secs(20),
            &format!("{engine}: the frontend reads w0's queue of 4"),
            || async { (metric(&fe.url(), series).await == 4.0).then_some(()) },
        )
        .await;
        // The scrape also brought the running count, and said where it came from.
        assert_eq!(
            metric(&fe.url(), "switchyard_instance_running{worker=\"w0\"").await,
            1.0,
            "{engine}"
        );
        assert!(
            metric(&fe.url(), "switchyard_load_scrapes_total{result=\"ok\"}").await > 0.0,
            "{engine}"
        );
        // Idle ties would split these evenly; the reported queue sends them all to w1.
        let counts = spread(&fe, 12, None).await;
        assert_eq!(counts.get("w1"), Some(&12), "{engine}: {counts:?}");
    }
}

#[tokio::test]
async fn a_worker_without_the_dialect_or_metrics_is_unknown_and_still_served() {
    // A plain mocker registered as vLLM exports none of vLLM's series; one registered as
    // TRT-LLM has no `/prometheus/metrics` at all (404).
    let plain = mocker(&[]).await.unwrap();
    let other = mocker(&[]).await.unwrap();
    let yaml = format!(
        "routing:\n  policy: least-loaded\nevents:\n  load_scrape: {{interval: 50ms, stale: 1s}}\n\
         workers:\n  - {{model: {MODEL}, url: \"{}\", id: a, engine: vllm}}\n\
         \x20 - {{model: {MODEL}, url: \"{}\", id: b, engine: trtllm}}\n",
        plain.url(),
        other.url()
    );
    let (fe, _dir) = frontend_with_config(&yaml, &[]).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "both scrape outcomes counted",
        || async {
            let empty = metric(&fe.url(), "switchyard_load_scrapes_total{result=\"empty\"}").await;
            let error = metric(&fe.url(), "switchyard_load_scrapes_total{result=\"error\"}").await;
            (empty > 0.0 && error > 0.0).then_some(())
        },
    )
    .await;
    let counts = spread(&fe, 10, None).await;
    assert_eq!(counts.values().sum::<usize>(), 10);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(
        metric(&fe.url(), "switchyard_instance_queued{worker=\"a\"").await,
        0.0
    );
}

#[tokio::test]
async fn figures_from_a_worker_that_stops_answering_decay_to_unknown() {
    let flags = ["--engine", "vllm", "--max-running", "1", "--itl-ms", "5"];
    let busy = mocker(&flags).await.unwrap();
    let (fe, _dir) = frontend_with_config(&config("vllm", &[&busy]), &[])
        .await
        .unwrap();
    let held = queue_on(&busy, 3).await;
    let series = "switchyard_instance_queued{worker=\"w0\"";
    eventually(Duration::from_secs(20), "queue of 2 read", || async {
        (metric(&fe.url(), series).await == 2.0).then_some(())
    })
    .await;
    // Killed with its queue still full: no scrape succeeds any more, and after stale_ms the
    // last figure must not linger.
    busy.signal(Signal::SIGKILL).unwrap();
    drop(held);
    eventually(
        Duration::from_secs(20),
        "queue decays to unknown",
        || async { (metric(&fe.url(), series).await == 0.0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_worker_started_with_an_api_key_gets_it_on_every_call_and_it_is_never_shown() {
    const KEY: &str = "sk-worker-5b1d9e";
    let worker = mocker_with_key(KEY, &["--engine", "vllm"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("worker-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let yaml = format!(
        "admin_token: {ADMIN}\nload_scrape:\n  interval_ms: 50\n  stale_ms: 1000\n\
         canary:\n  idle_ms: 100\nworkers:\n  - {{model: {MODEL}, url: \"{}\", id: k, engine: vllm, \
         api_key_file: \"{}\"}}\n",
        worker.url(),
        key_file.display()
    );
    let (fe, _dir) = frontend_with_config(&yaml, &[]).await.unwrap();
    // The idle canary (a generation on /v1/completions) reaches the worker past its key check:
    // only authorized calls are counted by the mocker.
    eventually(Duration::from_secs(20), "an authorized canary", || async {
        (metric(&worker.url(), "switchyard_mocker_requests_total").await >= 1.0).then_some(())
    })
    .await;
    let counts = spread(&fe, 3, None).await;
    assert_eq!(counts.get("k"), Some(&3));
    let admin = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(admin.contains("\"id\":\"k\""), "{admin}");
    for shown in [
        admin,
        fe.log_text(),
        reqwest::get(format!("{}/metrics", fe.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ] {
        assert!(!shown.contains(KEY), "the worker key leaked: {shown}");
    }
    // Without the key the same worker refuses the frontend: the setting is what made it work.
    let yaml = format!(
        "canary:\n  idle_ms: 0\nworkers:\n  - {{model: {MODEL}, url: \"{}\", id: k, engine: vllm}}\n",
        worker.url()
    );
    let (bare, _dir2) = frontend_with_config(&yaml, &[]).await.unwrap();
    let (status, _, _) = switchyard_tests::http::post_json(
        &format!("{}/v1/chat/completions", bare.url()),
        &chat("no key", 2, false),
        &[],
    )
    .await
    .unwrap();
    assert_ne!(status, 200);
}

#[tokio::test]
async fn an_unreadable_or_empty_key_file_stops_the_frontend_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (file, why) in [
        (empty.display().to_string(), "no usable key"),
        ("/nonexistent/key".to_owned(), "/nonexistent/key"),
    ] {
        let out = std::process::Command::new(switchyard_tests::switchyard_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--worker",
                &format!("{MODEL}=http://127.0.0.1:9;api_key_file={file}"),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("api_key_file") && err.contains(why), "{err}");
    }
}
