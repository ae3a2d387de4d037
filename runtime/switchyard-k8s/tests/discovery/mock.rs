//! The mocked API server and test objects.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use switchyard_k8s::source::{sha256_hex, UrlFetcher};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub type Pending = (
    Request<Body>,
    tower_test::mock::SendResponse<Response<Body>>,
);

/// Routes each request to a queue per resource, so a test answers them in its own order.
pub struct MockApi {
    pub pools: UnboundedReceiver<Pending>,
    pub slices: UnboundedReceiver<Pending>,
    pub plugins: UnboundedReceiver<Pending>,
    /// GETs of one ConfigMap (plugin bytes).
    pub config_maps: UnboundedReceiver<Pending>,
    /// Lists and watches of ConfigMaps (metadata only).
    pub config_map_watch: UnboundedReceiver<Pending>,
    /// Watch requests answered later are parked here (their connection stays open).
    pub parked: Vec<Pending>,
}

pub struct NoUrls;

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

pub fn mock() -> (Client, MockApi) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (pools_tx, pools) = unbounded_channel();
    let (slices_tx, slices) = unbounded_channel();
    let (plugins_tx, plugins) = unbounded_channel();
    let (cms_tx, config_maps) = unbounded_channel();
    let (cm_watch_tx, config_map_watch) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(pending) = handle.next_request().await {
            let path = pending.0.uri().path().to_string();
            let tx: &UnboundedSender<Pending> = if path.contains("/workerpools") {
                &pools_tx
            } else if path.contains("/endpointslices") {
                &slices_tx
            } else if path.contains("/routerplugins") {
                &plugins_tx
            } else if path.ends_with("/configmaps") {
                &cm_watch_tx
            } else if path.contains("/configmaps/") {
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
            config_map_watch,
            parked: Vec::new(),
        },
    )
}

pub async fn next(rx: &mut UnboundedReceiver<Pending>, watch: bool) -> Pending {
    let pending = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no request within 5s")
        .expect("mock closed");
    let query = pending.0.uri().query().unwrap_or_default().to_string();
    assert_eq!(query.contains("watch=true"), watch, "{}", pending.0.uri());
    pending
}

pub fn reply(pending: Pending, body: Vec<u8>) {
    let response = Response::builder().body(Body::from(body)).unwrap();
    pending.1.send_response(response);
}

pub fn list(kind: &str, items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items}))
        .unwrap()
}

pub fn watch_events(events: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (type_, object) in events {
        out.extend(serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap());
        out.push(b'\n');
    }
    out
}

pub fn pool(weight: f64, rv: &str) -> Value {
    pool_in("default", weight, rv)
}

pub fn pool_in(ns: &str, weight: f64, rv: &str) -> Value {
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
        "metadata": {"name": "llama", "namespace": ns, "resourceVersion": rv, "generation": 1},
        "spec": {"model": "meta-llama/Llama-3.1-8B-Instruct", "engine": "vllm", "replicas": 2,
                 "template": {"image": "vllm/vllm-openai"}, "routing": {"weight": weight, "labels": {"zone": "a"}},
                 "health": {"canary": {"model": "{model}", "prompt": "ping", "max_tokens": 1},
                            "canaryPath": "/v1/completions", "idleSeconds": 12, "timeoutSeconds": 3}}})
}

pub fn slice(endpoints: &[(&str, &str, bool)], rv: &str) -> Value {
    slice_in("default", endpoints, rv)
}

pub fn slice_in(ns: &str, endpoints: &[(&str, &str, bool)], rv: &str) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, pod, ready)| {
            json!({"addresses": [ip], "conditions": {"ready": ready},
            "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "llama-x1", "namespace": ns, "resourceVersion": rv,
                     "labels": {"kubernetes.io/service-name": "llama", "switchyard.dev/pool": "llama"}},
        "addressType": "IPv4", "endpoints": eps, "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]})
}

pub async fn event<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no event within 5s")
        .expect("discovery ended")
}

pub async fn quiet<T: std::fmt::Debug>(rx: &mut UnboundedReceiver<T>) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Ok(e) = rx.try_recv() {
        panic!("unexpected event {e:?}");
    }
}

pub fn plugin(generation: i64, observed: i64, config: Value, digest_of: &[u8]) -> Value {
    let sha = sha256_hex(b"component v1");
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "RouterPlugin",
        "metadata": {"name": "pick", "namespace": "default", "resourceVersion": format!("{generation}{observed}"), "generation": generation},
        "spec": {"kind": "picker", "source": {"configMap": {"name": "pick-wasm", "key": "plugin.wasm"}, "sha256": sha},
                 "config": config, "mode": "Shadow", "failurePolicy": "FailClosed"},
        "status": {"observedGeneration": observed, "digest": format!("sha256:{}", sha256_hex(digest_of)),
                   "conditions": [{"type": "Validated", "status": "True", "reason": "Validated", "message": "",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

pub fn config_map(bytes: &[u8]) -> Vec<u8> {
    let encoded = serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())).unwrap();
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "pick-wasm", "namespace": "default"},
        "binaryData": {"plugin.wasm": encoded}}))
    .unwrap()
}

/// A RouterPlugin `pick` whose generation `generation` the operator validated for `bytes`.
pub fn validated_plugin(generation: i64, bytes: &[u8]) -> Value {
    let mut p = plugin(generation, generation, json!({}), bytes);
    p["spec"]["source"]["sha256"] = json!(sha256_hex(bytes));
    p
}

/// A metadata-only ConfigMap, as a metadata watch delivers it.
pub fn config_map_meta(name: &str, rv: &str) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv}})
}

/// The answer to a metadata list.
pub fn meta_list(items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
        "metadata": {"resourceVersion": "10"}, "items": items}),
    )
    .unwrap()
}
