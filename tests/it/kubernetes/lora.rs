//! LoraAdapters through `--discovery kubernetes`: an adapter of a model its own namespace
//! serves is listed with `parent` and routed to the model's instances; one declared from
//! another namespace is not.

use serde_json::Value;
use switchyard_tests::http::post_json;
use switchyard_tests::mocker;

use super::fake_api::{lora_adapter, pool, slice, FakeApi};
use super::{chat_for, kubernetes_frontend};

#[tokio::test]
async fn a_lora_adapter_resource_is_routed_over_its_namespaces_model_only() {
    // The engine has `sql` loaded (vLLM's --lora-modules), so it serves requests for it.
    let m = mocker(&[
        "--model",
        "served",
        "--engine",
        "vllm",
        "--max-loras",
        "2",
        "--lora-modules",
        "sql=/",
    ])
    .await
    .unwrap();
    let api = FakeApi::start_with_adapters(
        vec![pool("warm", "served")],
        vec![slice("warm", "127.0.0.1", m.port, true)],
        vec![
            lora_adapter("default", "sql", "served"),
            // Another namespace naming this namespace's model: never routed.
            lora_adapter("team-b", "steal", "served"),
        ],
    )
    .await;
    api.release_lists();
    let mut fe = kubernetes_frontend(&api);
    fe.wait_ready("/ready").await.unwrap();

    let models = crate::distributed::eventually(
        std::time::Duration::from_secs(15),
        "sql listed in /v1/models",
        || async {
            let v: Value = reqwest::get(format!("{}/v1/models", fe.url()))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v.to_string().contains("\"sql\"").then_some(v)
        },
    )
    .await;
    let data = models["data"].as_array().unwrap();
    let sql = data.iter().find(|m| m["id"] == "sql").unwrap();
    assert_eq!(sql["parent"], "served");
    assert!(!data.iter().any(|m| m["id"] == "steal"), "{models}");

    let url = format!("{}/v1/chat/completions", fe.url());
    let (status, _, body) = post_json(&url, &chat_for("sql"), &[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "sql");
    let (status, _, body) = post_json(&url, &chat_for("steal"), &[]).await.unwrap();
    assert_eq!(status, 404, "{body}");
}
