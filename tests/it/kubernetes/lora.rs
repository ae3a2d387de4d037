//! LoraAdapters through `--discovery kubernetes`: an adapter of a model its own namespace
//! serves is listed with `parent` and routed to the model's instances; one declared from
//! another namespace is not.

use serde_json::Value;
use switchyard_tests::http::post_json;
use switchyard_tests::{free_port, mocker, Proc};

use super::chat_for;
use super::fake_api::{lora_adapter, pool, slice, FakeApi};

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
    let mut fe = Proc::spawn_with_env(
        "frontend",
        &args,
        port,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("SWITCHYARD_KUBERNETES_NAMESPACE", "default"),
        ],
    )
    .unwrap();
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
