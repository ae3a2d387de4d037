//! The served-model check (`served_model_check`): a worker whose engine serves another model
//! name is taken out of routing instead of answering every request with the engine's 404,
//! shows what it serves in `/admin/instances`, and adapters the engine lists become resident.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::http::post_json;
use switchyard_tests::{frontend_with_config, mocker, Proc};

use crate::distributed::eventually;
use crate::{chat, spread, MODEL};

const ADMIN: &str = "served-admin-token";

async fn instances(fe: &Proc) -> Vec<Value> {
    let v = fe.admin_json("/admin/instances", ADMIN).await;
    v["instances"].as_array().cloned().unwrap_or_default()
}

fn config(workers: &[(&str, &Proc)]) -> String {
    let mut yaml = format!(
        "admin_token: {ADMIN}\nrouting:\n  policy: round-robin\nserved_model_check:\n  \
         interval_ms: 100\nprobe:\n  interval_ms: 0\ncanary:\n  idle_ms: 0\nworkers:\n"
    );
    for (id, w) in workers {
        yaml.push_str(&format!(
            "  - {{model: {MODEL}, url: \"{}\", id: {id}, engine: vllm}}\n",
            w.url()
        ));
    }
    yaml
}

#[tokio::test]
async fn a_worker_serving_another_name_is_taken_out_and_named_in_admin() {
    let right = mocker(&["--model", MODEL]).await.unwrap();
    let wrong = mocker(&["--model", "meta-llama/Llama-3.1-8B"])
        .await
        .unwrap();
    let (fe, _dir) = frontend_with_config(&config(&[("good", &right), ("misnamed", &wrong)]), &[])
        .await
        .unwrap();
    let listed = eventually(
        Duration::from_secs(20),
        "the check reads the misnamed worker's /v1/models",
        || async {
            instances(&fe)
                .await
                .into_iter()
                .find(|i| i["id"] == "misnamed")
                .and_then(|i| i.get("served_models_instead").cloned())
        },
    )
    .await;
    assert_eq!(listed, serde_json::json!(["meta-llama/Llama-3.1-8B"]));
    let good = instances(&fe).await.into_iter().find(|i| i["id"] == "good");
    assert!(
        good.is_some_and(|g| g.get("served_models_instead").is_none()),
        "the right worker is not flagged"
    );
    // Round-robin over both would send every other request to the engine's 404.
    let counts = spread(&fe, 10, None).await;
    assert_eq!(counts.get("good"), Some(&10), "{counts:?}");
}

#[tokio::test]
async fn a_model_whose_only_worker_is_misnamed_is_unavailable_not_the_engines_404() {
    let wrong = mocker(&["--model", "served-elsewhere"]).await.unwrap();
    let (fe, _dir) = frontend_with_config(&config(&[("only", &wrong)]), &[])
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the worker is flagged", || async {
        instances(&fe)
            .await
            .into_iter()
            .find(|i| i["id"] == "only" && i.get("served_models_instead").is_some())
    })
    .await;
    let (status, _, body) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("hello", 2, false),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn adapters_the_engine_lists_are_resident_without_a_request() {
    let worker = mocker(&[
        "--model",
        MODEL,
        "--max-loras",
        "2",
        "--lora-modules",
        "sql-lora=/loras/sql",
    ])
    .await
    .unwrap();
    let (fe, _dir) = frontend_with_config(&config(&[("w0", &worker)]), &[])
        .await
        .unwrap();
    let adapters = eventually(Duration::from_secs(20), "sql-lora is resident", || async {
        instances(&fe)
            .await
            .into_iter()
            .find(|i| i["id"] == "w0")
            .map(|i| i["adapters"].clone())
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    assert_eq!(adapters, serde_json::json!(["sql-lora"]));
}

#[tokio::test]
async fn v1_models_passes_the_engines_card_on() {
    let worker = mocker(&["--model", MODEL, "--engine", "vllm", "--kv-blocks", "512"])
        .await
        .unwrap();
    let (fe, _dir) = frontend_with_config(&config(&[("w0", &worker)]), &[])
        .await
        .unwrap();
    let card = eventually(
        Duration::from_secs(20),
        "the check reads the engine's card",
        || async {
            let list: Value = reqwest::get(format!("{}/v1/models", fe.url()))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let card = list["data"]
                .as_array()?
                .iter()
                .find(|m| m["id"] == MODEL)?
                .clone();
            (card["owned_by"] == "vllm").then_some(card)
        },
    )
    .await;
    // The mocker's context is its KV cache: 512 blocks of 16 tokens.
    assert_eq!(card["max_model_len"], 8192, "{card}");
    assert_eq!(card["root"], MODEL, "{card}");
    assert!(card["created"].as_u64().is_some_and(|c| c > 0), "{card}");
}
