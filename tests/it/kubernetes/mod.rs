//! `--discovery kubernetes` end to end against a stand-in API server ([`fake_api`]): readiness
//! waits for the first discovery list, and a model whose pool has no ready instance answers
//! 503 `model_unavailable` (retryable) instead of 404; and a frontend rolling restart under
//! streaming load ([`rollout`]).

mod balancer;
mod fake_api;
mod lora;
mod rollout;

use std::time::Duration;

use serde_json::json;
use switchyard_tests::http::post_json;
use switchyard_tests::{free_port, mocker, Proc};

use fake_api::{pool, slice, FakeApi};

/// A frontend discovering through the stand-in API server, in namespace `default` (not yet
/// waited on: the tests wait for the readiness they are about).
fn kubernetes_frontend(api: &FakeApi) -> Proc {
    let port = free_port();
    let kubeconfig = api.kubeconfig.path().display().to_string();
    let args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:{port}",
        "--discovery",
        "kubernetes",
    ]
    .map(String::from)
    .to_vec();
    Proc::spawn_with_env(
        "frontend",
        &args,
        port,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("SWITCHYARD_KUBERNETES_NAMESPACE", "default"),
        ],
    )
    .unwrap()
}

fn chat_for(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
}

#[tokio::test]
async fn readiness_waits_for_discovery_and_a_pool_without_ready_pods_is_unavailable() {
    let m = mocker(&["--model", "served"]).await.unwrap();
    let api = FakeApi::start(
        vec![pool("warm", "served"), pool("cold", "cold-model")],
        vec![
            slice("warm", "127.0.0.1", m.port, true),
            // The cold pool's only pod is still loading its model: not ready.
            slice("cold", "127.0.0.1", free_port(), false),
        ],
    )
    .await;
    let mut fe = kubernetes_frontend(&api);
    fe.wait_ready("/live").await.unwrap();

    // The WorkerPool list has been asked for and is being held: not ready yet.
    tokio::time::timeout(Duration::from_secs(20), api.pool_list_seen.notified())
        .await
        .expect("the frontend never listed WorkerPools");
    let ready = reqwest::get(format!("{}/ready", fe.url())).await.unwrap();
    assert_eq!(ready.status(), 503, "ready before discovery listed");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["reason"], "discovery has not listed yet");

    api.release_lists();
    fe.wait_ready("/ready").await.unwrap();

    let url = format!("{}/v1/chat/completions", fe.url());
    let (status, headers, body) = post_json(&url, &chat_for("cold-model"), &[]).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "model_unavailable", "{body}");
    assert!(
        headers.contains_key("retry-after"),
        "503 model_unavailable carries Retry-After: {headers:?}"
    );

    let (status, _, body) = post_json(&url, &chat_for("no-such-model"), &[])
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");

    let (status, _, body) = post_json(&url, &chat_for("served"), &[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
}
