//! Kubernetes discovery against a mocked API server: instances and plugins appear, change and
//! disappear.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use switchyard_k8s::source::{sha256_hex, SourceFetcher, UrlFetcher};
use switchyard_k8s::{run_discovery, run_plugin_discovery, PluginEvent, PluginKind};
use switchyard_runtime::{DiscoveryEvent, DiscoveryState};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

type Pending = (
    Request<Body>,
    tower_test::mock::SendResponse<Response<Body>>,
);

/// Routes each request to a queue per resource, so a test answers them in its own order.
struct MockApi {
    pools: UnboundedReceiver<Pending>,
    slices: UnboundedReceiver<Pending>,
    plugins: UnboundedReceiver<Pending>,
    config_maps: UnboundedReceiver<Pending>,
    /// Watch requests answered later are parked here (their connection stays open).
    parked: Vec<Pending>,
}

struct NoUrls;

impl UrlFetcher for NoUrls {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, switchyard_k8s::Result<Bytes>> {
        Box::pin(async move {
            Err(switchyard_k8s::Error::Fetch {
                url: url.to_string(),
                message: "no network in tests".to_string(),
            })
        })
    }
}

fn mock() -> (Client, MockApi) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (pools_tx, pools) = unbounded_channel();
    let (slices_tx, slices) = unbounded_channel();
    let (plugins_tx, plugins) = unbounded_channel();
    let (cms_tx, config_maps) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(pending) = handle.next_request().await {
            let path = pending.0.uri().path().to_string();
            let tx: &UnboundedSender<Pending> = if path.contains("/workerpools") {
                &pools_tx
            } else if path.contains("/endpointslices") {
                &slices_tx
            } else if path.contains("/routerplugins") {
                &plugins_tx
            } else if path.contains("/configmaps") {
                &cms_tx
            } else {
                panic!("unexpected request {path}");
            };
            let _ = tx.send(pending);
        }
    });
    let client = Client::new(service, "default");
    (
        client,
        MockApi {
            pools,
            slices,
            plugins,
            config_maps,
            parked: Vec::new(),
        },
    )
}

async fn next(rx: &mut UnboundedReceiver<Pending>, watch: bool) -> Pending {
    let pending = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no request within 5s")
        .expect("mock closed");
    let query = pending.0.uri().query().unwrap_or_default().to_string();
    assert_eq!(query.contains("watch=true"), watch, "{}", pending.0.uri());
    pending
}

fn reply(pending: Pending, body: Vec<u8>) {
    let response = Response::builder().body(Body::from(body)).unwrap();
    pending.1.send_response(response);
}

fn list(kind: &str, items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items}))
        .unwrap()
}

fn watch_events(events: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (type_, object) in events {
        out.extend(serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap());
        out.push(b'\n');
    }
    out
}

fn pool(weight: f64, rv: &str) -> Value {
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
        "metadata": {"name": "llama", "namespace": "default", "resourceVersion": rv, "generation": 1},
        "spec": {"model": "meta-llama/Llama-3.1-8B-Instruct", "engine": "vllm", "replicas": 2,
                 "template": {"image": "vllm/vllm-openai"}, "routing": {"weight": weight, "labels": {"zone": "a"}}}})
}

fn slice(endpoints: &[(&str, &str, bool)], rv: &str) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, pod, ready)| {
            json!({"addresses": [ip], "conditions": {"ready": ready},
            "targetRef": {"kind": "Pod", "name": pod, "namespace": "default"}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "llama-x1", "namespace": "default", "resourceVersion": rv,
                     "labels": {"kubernetes.io/service-name": "llama", "switchyard.dev/pool": "llama"}},
        "addressType": "IPv4", "endpoints": eps, "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]})
}

async fn event<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no event within 5s")
        .expect("discovery ended")
}

async fn quiet<T: std::fmt::Debug>(rx: &mut UnboundedReceiver<T>) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Ok(e) = rx.try_recv() {
        panic!("unexpected event {e:?}");
    }
}

#[tokio::test]
async fn instances_appear_change_and_disappear() {
    let (client, mut api) = mock();
    let (tx, mut rx) = unbounded_channel();
    let task = tokio::spawn(run_discovery(client, Some("default".into()), tx));

    let req = next(&mut api.pools, false).await;
    assert!(req
        .0
        .uri()
        .path()
        .starts_with("/apis/switchyard.dev/v1alpha1/namespaces/default/workerpools"));
    reply(req, list("WorkerPoolList", vec![pool(2.0, "1")]));
    let req = next(&mut api.slices, false).await;
    assert!(
        req.0
            .uri()
            .query()
            .unwrap()
            .contains("labelSelector=switchyard.dev%2Fpool"),
        "{}",
        req.0.uri()
    );
    reply(
        req,
        list(
            "EndpointSliceList",
            vec![slice(
                &[
                    ("10.0.0.7", "llama-a", true),
                    ("10.0.0.8", "llama-b", false),
                ],
                "2",
            )],
        ),
    );

    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::State(DiscoveryState::Connected)
    );
    let DiscoveryEvent::Snapshot(snapshot) = event(&mut rx).await else {
        panic!("expected a snapshot")
    };
    assert_eq!(snapshot.len(), 1, "only ready endpoints: {snapshot:?}");
    let a = &snapshot[0];
    assert_eq!(a.id, "default/llama/llama-a");
    assert_eq!(a.model, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(a.url, "http://10.0.0.7:8000");
    assert_eq!(a.engine, switchyard_runtime::Engine::Vllm);
    assert_eq!(a.weight, 2.0);
    assert_eq!(a.labels["zone"], "a");
    assert_eq!(a.labels["switchyard.dev/pool"], "llama");

    // The second pod becomes ready.
    let pool_watch = next(&mut api.pools, true).await;
    api.parked.push(pool_watch);
    let req = next(&mut api.slices, true).await;
    reply(
        req,
        watch_events(&[(
            "MODIFIED",
            slice(
                &[("10.0.0.7", "llama-a", true), ("10.0.0.8", "llama-b", true)],
                "3",
            ),
        )]),
    );
    let DiscoveryEvent::Upsert(b) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(
        (b.id.as_str(), b.url.as_str()),
        ("default/llama/llama-b", "http://10.0.0.8:8000")
    );

    // The first pod goes away (rolling update).
    let req = next(&mut api.slices, true).await;
    reply(
        req,
        watch_events(&[("MODIFIED", slice(&[("10.0.0.8", "llama-b", true)], "4"))]),
    );
    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::Remove {
            id: "default/llama/llama-a".into()
        }
    );

    // The pool's routing weight changes: its instances are re-announced.
    let pool_watch = api.parked.pop().unwrap();
    reply(pool_watch, watch_events(&[("MODIFIED", pool(3.0, "5"))]));
    let DiscoveryEvent::Upsert(b) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(b.weight, 3.0);

    // The pool is deleted: its instances disappear even before the slice does.
    let req = next(&mut api.pools, true).await;
    reply(req, watch_events(&[("DELETED", pool(3.0, "6"))]));
    assert_eq!(
        event(&mut rx).await,
        DiscoveryEvent::Remove {
            id: "default/llama/llama-b".into()
        }
    );
    quiet(&mut rx).await;

    drop(rx);
    task.abort();
}

fn plugin(generation: i64, observed: i64, config: Value, digest_of: &[u8]) -> Value {
    let sha = sha256_hex(b"component v1");
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "RouterPlugin",
        "metadata": {"name": "pick", "namespace": "default", "resourceVersion": format!("{generation}{observed}"), "generation": generation},
        "spec": {"kind": "picker", "source": {"configMap": {"name": "pick-wasm", "key": "plugin.wasm"}, "sha256": sha},
                 "config": config, "mode": "Shadow", "failurePolicy": "FailClosed"},
        "status": {"observedGeneration": observed, "digest": format!("sha256:{}", sha256_hex(digest_of)),
                   "conditions": [{"type": "Validated", "status": "True", "reason": "Validated", "message": "",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

fn config_map(bytes: &[u8]) -> Vec<u8> {
    let encoded = serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())).unwrap();
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "pick-wasm", "namespace": "default"},
        "binaryData": {"plugin.wasm": encoded}}))
    .unwrap()
}

#[tokio::test]
async fn validated_plugins_are_loaded_swapped_and_removed() {
    let (client, mut api) = mock();
    let (tx, mut rx) = unbounded_channel();
    let fetcher = SourceFetcher::new(client.clone(), Arc::new(NoUrls));
    let task = tokio::spawn(run_plugin_discovery(
        client,
        Some("default".into()),
        fetcher,
        tx,
    ));

    // One validated plugin and one the operator has not validated: only the first is fetched.
    let mut unvalidated = plugin(1, 1, json!({}), b"component v1");
    unvalidated["metadata"]["name"] = json!("draft");
    unvalidated["status"] = json!({});
    let req = next(&mut api.plugins, false).await;
    reply(
        req,
        list(
            "RouterPluginList",
            vec![plugin(1, 1, json!({"k": 1}), b"component v1"), unvalidated],
        ),
    );
    let req = next(&mut api.config_maps, false).await;
    assert!(req
        .0
        .uri()
        .path()
        .ends_with("/namespaces/default/configmaps/pick-wasm"));
    reply(req, config_map(b"component v1"));
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::State(DiscoveryState::Connected)
    );
    let PluginEvent::Upsert(a) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(
        (a.namespace.as_str(), a.name.as_str(), a.kind),
        ("default", "pick", PluginKind::Picker)
    );
    assert_eq!(a.bytes, Bytes::from_static(b"component v1"));
    assert_eq!(a.sha256, sha256_hex(b"component v1"));
    assert_eq!(a.config, Some(json!({"k": 1})));
    assert_eq!(a.mode, switchyard_k8s::PluginMode::Shadow);
    assert_eq!(a.failure_policy, switchyard_k8s::FailurePolicy::FailClosed);

    // A new generation the operator has not yet validated changes nothing; once validated,
    // the new config is swapped in without re-fetching the unchanged bytes.
    let req = next(&mut api.plugins, true).await;
    reply(
        req,
        watch_events(&[
            ("MODIFIED", plugin(2, 1, json!({"k": 2}), b"component v1")),
            ("MODIFIED", plugin(2, 2, json!({"k": 2}), b"component v1")),
        ]),
    );
    let PluginEvent::Upsert(b) = event(&mut rx).await else {
        panic!("expected an upsert")
    };
    assert_eq!(b.config, Some(json!({"k": 2})));
    assert_eq!(b.generation, Some(2));
    assert!(
        api.config_maps.try_recv().is_err(),
        "same digest: bytes reused"
    );

    // Deleted: unloaded.
    let req = next(&mut api.plugins, true).await;
    reply(
        req,
        watch_events(&[("DELETED", plugin(2, 2, json!({"k": 2}), b"component v1"))]),
    );
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::Remove {
            namespace: "default".into(),
            name: "pick".into()
        }
    );
    quiet(&mut rx).await;

    drop(rx);
    task.abort();
}

#[tokio::test]
async fn tampered_bytes_are_never_loaded() {
    let (client, mut api) = mock();
    let (tx, mut rx) = unbounded_channel();
    let fetcher = SourceFetcher::new(client.clone(), Arc::new(NoUrls));
    let task = tokio::spawn(run_plugin_discovery(
        client,
        Some("default".into()),
        fetcher,
        tx,
    ));
    let req = next(&mut api.plugins, false).await;
    reply(
        req,
        list(
            "RouterPluginList",
            vec![plugin(1, 1, json!({}), b"component v1")],
        ),
    );
    // The ConfigMap changed after validation: the frontend's own sha256 check refuses it.
    let req = next(&mut api.config_maps, false).await;
    reply(req, config_map(b"swapped behind our back"));
    assert_eq!(
        event(&mut rx).await,
        PluginEvent::State(DiscoveryState::Connected)
    );
    quiet(&mut rx).await;
    drop(rx);
    task.abort();
}
