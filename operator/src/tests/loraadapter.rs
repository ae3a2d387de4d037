//! LoraAdapter reconciles against the mocked API server, with small in-test engines that
//! speak vLLM's adapter API (`GET /v1/models` listing adapters with `parent`,
//! `POST /v1/load_lora_adapter`) and record every load they are asked for.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kube::runtime::controller::Action;
use parking_lot::Mutex;
use serde_json::{json, Value};
use switchyard_k8s::{EngineKind, WorkerPool, WorkerPoolStatus};

use crate::fixtures::*;
use crate::loraadapter::{reconcile, targets, Target, FINALIZER, RESYNC};

const BASE: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// An engine: the adapters it has, the load bodies it received, and whether loads fail.
#[derive(Default)]
struct Engine {
    loaded: Mutex<Vec<String>>,
    loads: Mutex<Vec<Value>>,
    unloads: Mutex<Vec<Value>>,
    /// `Authorization` of every request.
    auth: Mutex<Vec<Option<String>>>,
    refuse: bool,
}

/// Serves `engine` on a loopback port; returns its `http://127.0.0.1:port`.
async fn serve(engine: Arc<Engine>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let engine = Arc::clone(&engine);
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let engine = Arc::clone(&engine);
                async move { Ok::<_, Infallible>(answer(&engine, req).await) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    url
}

async fn answer(
    engine: &Engine,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    engine.auth.lock().push(auth);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let (status, text) = match path.as_str() {
        "/v1/models" => {
            let mut data = vec![json!({"id": BASE, "object": "model", "parent": null})];
            for a in engine.loaded.lock().iter() {
                data.push(json!({"id": a, "object": "model", "root": "/x", "parent": BASE}));
            }
            (200, json!({"object": "list", "data": data}).to_string())
        }
        "/v1/load_lora_adapter" => {
            let request: Value = serde_json::from_slice(&body).unwrap();
            engine.loads.lock().push(request.clone());
            if engine.refuse {
                let message = "Loading lora sql failed: No adapter found for /adapters/sql";
                (
                    400,
                    json!({"error": {"message": message, "type": "BadRequestError", "code": 400}})
                        .to_string(),
                )
            } else {
                let name = request["lora_name"].as_str().unwrap_or_default().to_owned();
                engine.loaded.lock().push(name.clone());
                (
                    200,
                    format!("Success: LoRA adapter '{name}' added successfully."),
                )
            }
        }
        "/v1/unload_lora_adapter" => {
            let request: Value = serde_json::from_slice(&body).unwrap();
            engine.unloads.lock().push(request.clone());
            let mut loaded = engine.loaded.lock();
            let before = loaded.len();
            loaded.retain(|a| request["lora_name"] != a.as_str());
            if loaded.len() < before {
                (200, "Success".to_owned())
            } else {
                (
                    404,
                    json!({"error": {"message": "not found", "code": 404}}).to_string(),
                )
            }
        }
        _ => (404, "{}".to_owned()),
    };
    hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}

fn pool_with(name: &str, model: &str, endpoints: Vec<String>) -> WorkerPool {
    let mut p = pool(name).with_status(WorkerPoolStatus {
        endpoints,
        ..Default::default()
    });
    p.spec.model = model.to_owned();
    p
}

fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
}

#[tokio::test]
async fn loads_on_the_first_instances_without_it_until_min_replicas_have_it() {
    let (e1, e2, e3, other) = (
        Arc::new(Engine::default()),
        Arc::new(Engine::default()),
        Arc::new(Engine::default()),
        Arc::new(Engine::default()),
    );
    e2.loaded.lock().push("sql".into()); // already there: counts, is not loaded again
    let mut urls = Vec::new();
    for e in [&e1, &e2, &e3] {
        urls.push(serve(Arc::clone(e)).await);
    }
    let other_url = serve(Arc::clone(&other)).await;
    let pools = vec![
        pool_with("llama", BASE, urls.clone()),
        pool_with("qwen", "qwen/Qwen2.5-7B", vec![other_url]),
    ];
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(vec![Call::ListPools(pools), Call::PatchAdapterStatus]);
    let action = reconcile(Arc::new(lora_adapter(2)), ctx).await.unwrap();
    let calls = finish(handle).await;
    assert_eq!(action, Action::requeue(RESYNC));

    let engines = [&e1, &e2, &e3];
    let loads: usize = engines.iter().map(|e| e.loads.lock().len()).sum();
    assert_eq!(loads, 1, "one load: one engine already had it");
    // Endpoints are taken in order: of the two without it (e1, e3) the first URL gets it.
    let first_without = urls[0].clone().min(urls[2].clone());
    let mut want = vec![
        format!("llama/{}", host(&first_without)),
        format!("llama/{}", host(&urls[1])),
    ];
    want.sort();
    let status = &calls[1].body["status"];
    let listed: Vec<String> = serde_json::from_value(status["loadedOn"].clone()).unwrap();
    assert_eq!(listed, want, "{status}");
    assert_eq!(status["readyReplicas"], 2);
    let ready = &status["conditions"][0];
    assert_eq!(
        (ready["type"].as_str(), ready["status"].as_str()),
        (Some("Ready"), Some("True"))
    );
    assert_eq!(status["observedGeneration"], 1);
    let load = engines
        .iter()
        .find_map(|e| e.loads.lock().first().cloned())
        .unwrap();
    assert_eq!(
        load,
        json!({"lora_name": "sql", "lora_path": "/adapters/sql"})
    );
    assert!(
        other.loads.lock().is_empty(),
        "another model's pool is never touched"
    );
}

#[tokio::test]
async fn a_refused_load_is_a_condition_an_event_and_a_backed_off_retry() {
    let engine = Arc::new(Engine {
        refuse: true,
        ..Default::default()
    });
    let url = serve(Arc::clone(&engine)).await;
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(vec![
        Call::ListPools(vec![pool_with("llama", BASE, vec![url.clone()])]),
        Call::PatchAdapterStatus,
        Call::CreateEvent,
    ]);
    let action = reconcile(Arc::new(lora_adapter(1)), ctx).await.unwrap();
    let calls = finish(handle).await;
    assert_ne!(
        action,
        Action::requeue(RESYNC),
        "retried sooner, with backoff"
    );
    assert_eq!(engine.loads.lock().len(), 1);
    let status = &calls[1].body["status"];
    assert_eq!(status["readyReplicas"], 0);
    let ready = &status["conditions"][0];
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "LoadFailed");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("No adapter found for /adapters/sql"),
        "{message}"
    );
    let event = &calls[2].body;
    assert_eq!(event["reason"], "LoadFailed");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "LoraAdapter");
}

#[tokio::test]
async fn no_ready_instance_is_reported_as_such() {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(vec![
        Call::ListPools(vec![pool_with("llama", BASE, Vec::new())]),
        Call::PatchAdapterStatus,
    ]);
    reconcile(Arc::new(lora_adapter(1)), ctx).await.unwrap();
    let calls = finish(handle).await;
    assert_eq!(
        calls[1].body["status"]["conditions"][0]["reason"],
        "NoInstances"
    );
}

#[test]
fn targets_are_the_base_models_ready_endpoints_in_the_listed_pools() {
    let pools = vec![
        pool_with("b", BASE, vec!["http://10.0.0.2:8000".into()]),
        pool_with(
            "a",
            BASE,
            vec!["http://10.0.0.9:8000".into(), "http://10.0.0.1:8000".into()],
        ),
        pool_with("q", "qwen", vec!["http://10.0.0.3:8000".into()]),
    ];
    let mut spec = lora_adapter(1).spec;
    let ids = |t: Vec<Target>| t.iter().map(Target::id).collect::<Vec<_>>();
    assert_eq!(
        ids(targets(&spec, &pools, None)),
        ["a/10.0.0.1:8000", "a/10.0.0.9:8000", "b/10.0.0.2:8000"]
    );
    spec.pools = vec!["b".into()];
    let only_b = targets(&spec, &pools, None);
    assert_eq!(ids(only_b.clone()), ["b/10.0.0.2:8000"]);
    assert_eq!(only_b[0].engine, EngineKind::Vllm);
}

#[tokio::test]
async fn the_finalizer_is_added_first_and_deletion_unloads_everywhere_then_releases_it() {
    let (has, lacks) = (Arc::new(Engine::default()), Arc::new(Engine::default()));
    has.loaded.lock().push("sql".into());
    let urls = vec![
        serve(Arc::clone(&has)).await,
        serve(Arc::clone(&lacks)).await,
    ];
    let pools = || vec![pool_with("llama", BASE, urls.clone())];

    // A new resource gets the finalizer before anything is loaded.
    let mut fresh = lora_adapter(1);
    fresh.metadata.finalizers = None;
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(vec![
        Call::PatchAdapter,
        Call::ListPools(pools()),
        Call::PatchAdapterStatus,
    ]);
    reconcile(Arc::new(fresh), ctx).await.unwrap();
    let calls = finish(handle).await;
    assert_eq!(
        calls[0].body,
        json!({"metadata": {"finalizers": [FINALIZER]}})
    );

    // Deleted: unloaded from every instance of the pool (one had it), finalizer released.
    let mut deleting = lora_adapter(1);
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(vec![Call::ListPools(pools()), Call::PatchAdapter]);
    let action = reconcile(Arc::new(deleting), ctx).await.unwrap();
    let calls = finish(handle).await;
    assert_eq!(action, Action::await_change());
    for e in [&has, &lacks] {
        assert_eq!(*e.unloads.lock(), [json!({"lora_name": "sql"})]);
    }
    assert!(has.loaded.lock().is_empty());
    assert_eq!(calls[1].body, json!({"metadata": {"finalizers": []}}));
}

#[tokio::test]
async fn a_pool_with_an_api_key_gets_it_from_the_keys_dir_on_every_call() {
    let engine = Arc::new(Engine::default());
    let url = serve(Arc::clone(&engine)).await;
    let dir = std::env::temp_dir().join(format!("sy-lora-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The frontend's naming: `<namespace>.<frontendKey>` (default frontendKey: secretName).
    std::fs::write(dir.join(format!("{NS}.llama-key")), "k-123\n").unwrap();
    let mut keyed = pool_with("llama", BASE, vec![url]);
    keyed.spec.api_key = Some(switchyard_k8s::workerpool::ApiKeyRef {
        secret_name: "llama-key".into(),
        key: "api-key".into(),
        frontend_key: None,
    });
    let (mut ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    Arc::get_mut(&mut ctx).unwrap().worker_keys_dir = Some(dir.clone());
    let handle = api.run(vec![
        Call::ListPools(vec![keyed.clone()]),
        Call::PatchAdapterStatus,
    ]);
    reconcile(Arc::new(lora_adapter(1)), Arc::clone(&ctx))
        .await
        .unwrap();
    let calls = finish(handle).await;
    assert_eq!(calls[1].body["status"]["readyReplicas"], 1);
    assert_eq!(
        *engine.auth.lock(),
        [
            Some("Bearer k-123".to_owned()),
            Some("Bearer k-123".to_owned())
        ],
        "the model list and the load both carry the key"
    );

    // Without the key file: no call reaches the engine, and the condition names the key.
    std::fs::remove_dir_all(&dir).unwrap();
    let (mut ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    Arc::get_mut(&mut ctx).unwrap().worker_keys_dir = Some(dir);
    let handle = api.run(vec![
        Call::ListPools(vec![keyed]),
        Call::PatchAdapterStatus,
        Call::CreateEvent,
    ]);
    reconcile(Arc::new(lora_adapter(1)), ctx).await.unwrap();
    let calls = finish(handle).await;
    let message = calls[1].body["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(&format!("worker API key `{NS}.llama-key`")),
        "{message}"
    );
    assert_eq!(
        engine.auth.lock().len(),
        2,
        "no further call without the key"
    );
}
