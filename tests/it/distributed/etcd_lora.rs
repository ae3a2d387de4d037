//! LoRA adapters declared in etcd (`<prefix><base model>/adapters/<name>`, docs/lora.md):
//! put live, routed to the base model's instances and loaded on demand there, deleted live.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::services::Etcd;

use super::{etcd_frontend, eventually, registered_mocker};
use crate::MODEL;

const ADAPTER_KEY: &str = "/switchyard/instances/mock-model/adapters/sql";

async fn etcd_client(etcd: &Etcd) -> etcd_client::Client {
    etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap()
}

/// (status, serving instance, body) of one chat request for `model`.
async fn chat(base: &str, model: &str) -> (u16, Option<String>, Value) {
    let body =
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let (status, headers, body) = post_json(&format!("{base}/v1/chat/completions"), &body, &[])
        .await
        .unwrap();
    let instance = headers
        .get("x-switchyard-instance")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, instance, body)
}

async fn listed_parent(base: &str, model: &str) -> Option<String> {
    let models: Value = reqwest::get(format!("{base}/v1/models"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    models["data"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == model)
        .map(|m| m["parent"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn an_adapter_put_in_etcd_routes_to_its_base_model_and_its_delete_makes_it_unknown() {
    assert!(ADAPTER_KEY.contains(MODEL));
    let etcd = Etcd::start().await.unwrap();
    let engine = [
        "--engine",
        "vllm",
        "--max-loras",
        "2",
        "--lora-load-ms",
        "20",
    ];
    let base = registered_mocker(&etcd, "base", "30", &engine).await;
    let mut other_flags = engine.to_vec();
    other_flags.extend(["--model", "other-model"]);
    let other = registered_mocker(&etcd, "other", "30", &other_flags).await;
    let fe = etcd_frontend(&etcd, &[]).await;
    let url = fe.url();
    eventually(Duration::from_secs(15), "both models routed", || async {
        let (a, _, _) = chat(&url, MODEL).await;
        let (b, _, _) = chat(&url, "other-model").await;
        (a == 200 && b == 200).then_some(())
    })
    .await;
    let (status, _, body) = chat(&url, "sql").await;
    assert_eq!(status, 404, "no adapter yet: {body}");

    // The source is opaque to the frontend: the mocker, like vLLM, checks that it exists.
    let adapter_dir = tempfile::tempdir().unwrap();
    let entry = json!({
        "name": "sql", "base_model": MODEL,
        "source": adapter_dir.path().display().to_string(), "on_demand": true,
    });
    let mut client = etcd_client(&etcd).await;
    client
        .put(ADAPTER_KEY, entry.to_string(), None)
        .await
        .unwrap();
    let parent = eventually(Duration::from_secs(15), "sql listed", || {
        listed_parent(&url, "sql")
    })
    .await;
    assert_eq!(parent, MODEL);
    for _ in 0..4 {
        let (status, instance, body) = chat(&url, "sql").await;
        assert_eq!((status, instance.as_deref()), (200, Some("base")), "{body}");
        assert_eq!(body["model"], "sql");
    }
    let loads = "switchyard_mocker_lora_loads_total";
    assert_eq!(
        metric(&base.url(), loads).await,
        1.0,
        "loaded once, on demand"
    );
    assert_eq!(metric(&other.url(), loads).await, 0.0);

    client.delete(ADAPTER_KEY, None).await.unwrap();
    eventually(Duration::from_secs(15), "sql unknown again", || async {
        let (status, _, _) = chat(&url, "sql").await;
        (status == 404).then_some(())
    })
    .await;
    assert_eq!(listed_parent(&url, "sql").await, None);
}
