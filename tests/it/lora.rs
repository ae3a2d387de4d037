//! LoRA adapters (`docs/lora.md`): mockers serving adapters as vLLM does, no NATS. Adapter
//! requests route among the base model's instances, stick where the engine reports the
//! adapter running, load on demand once for a burst, and fail loudly when the load fails.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::{frontend_with_config, mocker, Proc};

use crate::distributed::eventually;
use crate::MODEL;

const ADMIN: &str = "lora-admin-token";
const EXPLAIN: &str = "lora-explain-token";

fn adapter_chat(adapter: &str, content: &str, max_tokens: u32) -> Value {
    json!({
        "model": adapter,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    })
}

/// A frontend over `workers` (ids w0, w1, …; engine vllm) with one adapter `sql`.
fn config(workers: &[&Proc], source: &str, on_demand: bool) -> String {
    config_for("vllm", workers, source, on_demand)
}

fn config_for(engine: &str, workers: &[&Proc], source: &str, on_demand: bool) -> String {
    let mut yaml = format!(
        "admin_token: {ADMIN}\nload_scrape:\n  interval_ms: 50\n  stale_ms: 1000\n\
         probe:\n  interval_ms: 0\ncanary:\n  idle_ms: 0\n\
         adapters:\n  - {{name: sql, base_model: {MODEL}, source: \"{source}\", on_demand: {on_demand}}}\n\
         workers:\n"
    );
    for (i, w) in workers.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{model: {MODEL}, url: \"{}\", id: w{i}, engine: {engine}}}\n",
            w.url()
        ));
    }
    yaml
}

async fn admin_instances(fe: &Proc) -> Value {
    fe.admin_json("/admin/instances", ADMIN).await
}

fn adapters_of(instances: &Value, id: &str) -> Vec<String> {
    instances
        .as_array()
        .or_else(|| instances["instances"].as_array())
        .into_iter()
        .flatten()
        .find(|i| i["id"] == id)
        .and_then(|i| i["adapters"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_adapter_request_sticks_to_the_instance_the_engine_reports_it_running_on() {
    let flags = [
        "--engine",
        "vllm",
        "--max-loras",
        "2",
        "--lora-modules",
        "sql=/",
        "--itl-ms",
        "5",
    ];
    let w0 = mocker(&flags).await.unwrap();
    let w1 = mocker(&flags).await.unwrap();
    let explain = ["--explain-token".to_owned(), EXPLAIN.to_owned()];
    // Both engines list `sql` in /v1/models (loaded at start); this test is about the metric
    // that says where it is *running*, so the model-list check is off.
    let yaml = config(&[&w0, &w1], "/", false) + "served_model_check:\n  interval_ms: 0\n";
    let (fe, _dir) = frontend_with_config(&yaml, &explain).await.unwrap();

    let models: Value = reqwest::get(format!("{}/v1/models", fe.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let card = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "sql");
    assert_eq!(
        card.map(|c| c["parent"].clone()),
        Some(json!(MODEL)),
        "{models}"
    );

    // Another client keeps a long `sql` stream open on w1: vLLM's metric names the adapter.
    let mut long = adapter_chat("sql", "other client", 100_000);
    long["stream"] = json!(true);
    let held = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", w1.url()))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    eventually(
        Duration::from_secs(20),
        "w1 reported running sql",
        || async {
            adapters_of(&admin_instances(&fe).await, "w1")
                .contains(&"sql".to_owned())
                .then_some(())
        },
    )
    .await;
    assert!(adapters_of(&admin_instances(&fe).await, "w0").is_empty());

    // w1 carries one request more than w0, but the adapter is resident there: it wins.
    for i in 0..8 {
        let (status, headers, body) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &adapter_chat("sql", &format!("q {i}"), 2),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-switchyard-instance"], "w1");
        // The engine answered as the adapter: the body kept its name.
        assert_eq!(body["model"], "sql");
    }
    // An explained decision names the adapter ranking.
    let (_, headers, _) = post_json(
        &format!("{}/v1/chat/completions", fe.url()),
        &adapter_chat("sql", "explain me", 2),
        &[("x-switchyard-explain", EXPLAIN)],
    )
    .await
    .unwrap();
    let id = headers["x-request-id"].to_str().unwrap();
    let explained: Value = reqwest::Client::new()
        .get(format!("{}/admin/explain/{id}", fe.admin_url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        explained["stages"][0]["plugin"], "native:lora-affinity",
        "{explained}"
    );
    assert_eq!(explained["pick"][0], "w1", "{explained}");
    drop(held);
}

#[tokio::test]
async fn an_on_demand_adapter_is_loaded_once_for_a_burst_of_concurrent_requests() {
    for engine in ["vllm", "sglang"] {
        burst_loads_once(engine).await;
    }
}

/// 20 concurrent requests for an adapter no instance has: one load, in `engine`'s dialect.
async fn burst_loads_once(engine: &str) {
    let adapter_dir = tempfile::tempdir().unwrap();
    let source = adapter_dir.path().display().to_string();
    let w0 = mocker(&[
        "--engine",
        engine,
        "--max-loras",
        "2",
        "--lora-load-ms",
        "300",
    ])
    .await
    .unwrap();
    let (fe, _dir) = frontend_with_config(&config_for(engine, &[&w0], &source, true), &[])
        .await
        .unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    let burst = (0..20).map(|i| {
        let url = url.clone();
        async move { post_json(&url, &adapter_chat("sql", &format!("b {i}"), 2), &[]).await }
    });
    for result in futures_util::future::join_all(burst).await {
        let (status, _, body) = result.unwrap();
        assert_eq!(status, 200, "{engine}: {body}");
        assert_eq!(body["model"], "sql");
    }
    let loads = "switchyard_mocker_lora_loads_total";
    assert_eq!(
        metric(&w0.url(), loads).await,
        1.0,
        "{engine}: one load for 20 requests"
    );
    let ok = "switchyard_lora_loads_total{result=\"ok\"}";
    assert_eq!(metric(&fe.url(), ok).await, 1.0, "{engine}");
    let engine_models: Value = reqwest::get(format!("{}/v1/models", w0.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        engine_models.to_string().contains("\"sql\""),
        "{engine_models}"
    );
    // Resident now: later requests load nothing.
    let (status, _, _) = post_json(&url, &adapter_chat("sql", "later", 2), &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(metric(&w0.url(), loads).await, 1.0, "{engine}");
}

#[tokio::test]
async fn a_failed_load_is_an_explicit_error_never_a_base_model_answer() {
    let w0 = mocker(&[
        "--engine",
        "vllm",
        "--max-loras",
        "2",
        "--lora-load-ms",
        "300",
    ])
    .await
    .unwrap();
    let (fe, _dir) = frontend_with_config(&config(&[&w0], "/no/such/adapter", true), &[])
        .await
        .unwrap();
    // Five requests at once share the one failing load, and all fail with it.
    let url = format!("{}/v1/chat/completions", fe.url());
    let burst = (0..5).map(|i| {
        let url = url.clone();
        async move { post_json(&url, &adapter_chat("sql", &format!("h {i}"), 2), &[]).await }
    });
    let answers = futures_util::future::join_all(burst).await;
    let (status, _, body) = answers[0].as_ref().unwrap().clone();
    for answer in &answers {
        assert_eq!(
            answer.as_ref().unwrap().0,
            502,
            "{:?}",
            answer.as_ref().unwrap().2
        );
    }
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "adapter_load_failed");
    assert_eq!(body["error"]["param"], "model");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("No adapter found for /no/such/adapter"),
        "{message}"
    );
    // Nothing was generated: the base model did not answer in the adapter's place.
    assert_eq!(
        metric(&w0.url(), "switchyard_mocker_requests_total").await,
        0.0
    );
    let instances = admin_instances(&fe).await;
    assert!(
        instances.to_string().contains("loading adapter `sql`"),
        "{instances}"
    );
    let failed = "switchyard_lora_loads_total{result=\"error\"}";
    assert_eq!(metric(&fe.url(), failed).await, 1.0);
    // Sent to the engine anyway, the adapter is unknown there: vLLM's 404.
    let (status, _, body) = post_json(
        &format!("{}/v1/chat/completions", w0.url()),
        &adapter_chat("sql", "hello", 2),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "NotFoundError");
    assert_eq!(body["error"]["message"], "The model `sql` does not exist.");
}
