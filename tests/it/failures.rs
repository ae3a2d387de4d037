//! Failing instances: passive ejection, retry before the first byte, all-failing pools.

use serde_json::Value;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{free_port, frontend_with_config, mocker, worker_flags, Proc};

/// Active probing off, so these tests see passive health alone.
const NO_PROBE: &str = "probe:\n  interval_ms: 0\n";

async fn passive_only(args: &[String]) -> Proc {
    // The config file is read at start-up only; the temp dir may go once the frontend is up.
    frontend_with_config(NO_PROBE, args)
        .await
        .map(|(p, _dir)| p)
        .unwrap()
}

use crate::{chat, MODEL};

#[tokio::test]
async fn a_failing_instance_is_ejected_and_traffic_continues() {
    let bad = mocker(&["--status", "500"]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    let mut args = worker_flags(MODEL, &[&bad, &good]);
    args.extend([
        "--policy".into(),
        "round-robin".into(),
        "--admin-token".into(),
        "test-admin-token".into(),
    ]);
    // One failure ejects here (the default needs three, from distinct requests).
    let (fe, _dir) = frontend_with_config(
        &format!("{NO_PROBE}health:\n  failure_threshold: 1\n"),
        &args,
    )
    .await
    .unwrap();
    let good_id = good.url().trim_start_matches("http://").to_owned();
    for i in 0..20 {
        let (status, headers, body) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &chat(&format!("{i}"), 3, false),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(headers["x-switchyard-instance"], good_id.as_str());
    }
    // The bad instance was tried once, then ejected: far fewer retries than requests.
    let retries = metric(&fe.url(), "switchyard_retries_total").await;
    assert!((1.0..5.0).contains(&retries), "retries = {retries}");
    let admin: Value = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bad_view = admin["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] != good_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(bad_view["health"], "ejected", "{admin}");
    assert!(
        bad_view["last_error"].as_str().unwrap().contains("500"),
        "{admin}"
    );
}

#[tokio::test]
async fn a_connection_failure_is_retried_on_the_next_instance() {
    let good = mocker(&[]).await.unwrap();
    let dead = format!("{MODEL}=http://127.0.0.1:{}", free_port());
    let mut args = vec!["--worker".to_owned(), dead];
    args.extend(worker_flags(MODEL, &[&good]));
    args.extend(["--policy".into(), "round-robin".into()]);
    let fe = passive_only(&args).await;
    for stream in [false, true] {
        for i in 0..4 {
            let (status, _, body) = post_json(
                &format!("{}/v1/chat/completions", fe.url()),
                &chat(&format!("{i}"), 2, stream),
                &[],
            )
            .await
            .unwrap();
            assert_eq!(status, 200, "{body}");
        }
    }
    assert!(metric(&fe.url(), "switchyard_retries_total").await >= 1.0);
}

#[tokio::test]
async fn a_5xx_that_a_second_instance_reproduces_is_returned_and_blames_no_one() {
    let a = mocker(&["--status", "500"]).await.unwrap();
    let b = mocker(&["--status", "500"]).await.unwrap();
    let c = mocker(&["--status", "500"]).await.unwrap();
    let mut args = worker_flags(MODEL, &[&a, &b, &c]);
    args.extend(["--admin-token".into(), "test-admin-token".into()]);
    let (fe, _dir) = frontend_with_config(
        &format!("{NO_PROBE}health:\n  failure_threshold: 1\n"),
        &args,
    )
    .await
    .unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    for i in 0..4 {
        let (status, _, body) = post_json(&url, &chat(&format!("x {i}"), 2, false), &[])
            .await
            .unwrap();
        // The workers' status, a generic message: the request failed the same way twice.
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"]["code"], "upstream_error");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("--status"),
            "worker text leaked: {message}"
        );
    }
    // Two attempts per request, not three; even with a threshold of one nobody was ejected,
    // so every request reached the workers (no fast 503).
    assert_eq!(metric(&fe.url(), "switchyard_retries_total").await, 4.0);
    let admin: Value = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for instance in admin["instances"].as_array().unwrap() {
        assert_eq!(instance["health"], "healthy", "{admin}");
    }
}

#[tokio::test]
async fn the_active_probe_removes_an_unhealthy_instance_before_any_request() {
    let sick = mocker(&["--status", "503"]).await.unwrap();
    let good = mocker(&[]).await.unwrap();
    let (fe, _dir) = frontend_with_config(
        "probe:\n  interval_ms: 100\n",
        &worker_flags(MODEL, &[&sick, &good]),
    )
    .await
    .unwrap();
    let sick_id = sick.url().trim_start_matches("http://").to_owned();
    let series = format!("switchyard_instance_healthy{{worker=\"{sick_id}\",model=\"{MODEL}\"}}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while metric(&fe.url(), &series).await != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "probe never marked {sick_id} unhealthy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for i in 0..6 {
        let (status, headers, _) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &chat(&format!("{i}"), 2, false),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert_ne!(headers["x-switchyard-instance"], sick_id.as_str());
    }
    assert_eq!(
        metric(&fe.url(), "switchyard_retries_total").await,
        0.0,
        "no request should have reached the sick instance"
    );
}

#[tokio::test]
async fn a_worker_with_its_own_health_path_is_probed_there() {
    // The global probe path does not exist on the mocker; worker `a` overrides it.
    let (a, b) = (mocker(&[]).await.unwrap(), mocker(&[]).await.unwrap());
    let yaml = format!(
        "probe:\n  interval_ms: 100\n  path: /nope\nworkers:\n  - {{ id: a, model: {MODEL}, url: \"{}\", health_path: /health }}\n  - {{ id: b, model: {MODEL}, url: \"{}\" }}\n",
        a.url(),
        b.url()
    );
    let (fe, _dir) = frontend_with_config(&yaml, &[]).await.unwrap();
    let healthy =
        |w: &str| format!("switchyard_instance_healthy{{worker=\"{w}\",model=\"{MODEL}\"}}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metric(&fe.url(), &healthy("b")).await != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "b was never probed on /nope"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&fe.url(), &healthy("a")).await, 1.0);
    let counts = crate::spread(&fe, 4, None).await;
    assert_eq!(counts.get("a"), Some(&4), "{counts:?}");
}
