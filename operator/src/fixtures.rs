//! Test fixtures, controller-rs style: fluent builders for test objects and a mocked API server
//! that answers an expected sequence of calls ([`Call`]s, grouped into [`Scenario`]s) and
//! records what the reconciler sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use switchyard_k8s::source::{sha256_hex, UrlFetcher};
use switchyard_k8s::{
    ConfigMapSource, PluginKind, PluginSource, RouterPlugin, RouterPluginSpec, WorkerPool,
    WorkerPoolSpec, WorkerTemplate,
};

use crate::metrics::Metrics;
use crate::validator::{ComponentValidator, ValidationError};
use crate::Context;

pub const NS: &str = "default";
/// The uids the mocked API server gives the pool's Deployment and Service when it creates them.
pub const DEPLOYMENT_UID: &str = "deployment-uid-1";
pub const SERVICE_UID: &str = "service-uid-1";
type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected API call and the canned answer.
#[derive(Debug, Clone)]
pub enum Call {
    /// GET of the pool's Deployment before its first apply; `None` answers 404.
    GetDeployment(Option<Value>),
    /// GET of the pool's Service before its first apply; `None` answers 404.
    GetService(Option<Value>),
    /// SSA of the pool's Deployment; answered with the applied object plus this status.
    ApplyDeployment(DeploymentStatus),
    /// SSA of the pool's Service.
    ApplyService,
    /// List of the pool's EndpointSlices.
    ListSlices(Vec<EndpointSlice>),
    /// SSA of `workerpools/<name>/status`.
    PatchPoolStatus,
    /// GET of a ConfigMap; `None` answers 404.
    GetConfigMap(Option<Box<ConfigMap>>),
    /// SSA of `routerplugins/<name>/status`.
    PatchPluginStatus,
    /// GET of the Lease; `None` answers 404.
    GetLease(Option<Value>),
    /// POST of a new Lease.
    CreateLease,
    /// POST of an `events.k8s.io/v1` Event.
    CreateEvent,
    /// PATCH of an Event series (a repeat of an Event already recorded).
    PatchEvent,
    /// List of the namespace's WorkerPools.
    ListPools(Vec<WorkerPool>),
    /// SSA of `loraadapters/sql/status`.
    PatchAdapterStatus,
    /// Merge patch of `loraadapters/sql` (its finalizers).
    PatchAdapter,
    /// Any request, answered with this HTTP error status.
    Fail(Method, u16),
}

/// Named sequences of calls, one per reconcile outcome.
pub struct Scenario;

/// A request the reconciler made.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

/// Drives the mocked API server.
pub struct ApiServerVerifier(Handle);

/// Serves fixed bytes per URL.
#[derive(Default)]
pub struct StaticUrls(pub HashMap<String, Bytes>);

/// Answers with a fixed verdict.
pub struct FakeValidator(pub Result<Vec<PluginKind>, ValidationError>);

impl Scenario {
    /// A reconcile of a pool whose children this operator applied before (their uids are
    /// known: [`context`] seeds them), status changing.
    pub fn pool_changed(ds: DeploymentStatus, slices: Vec<EndpointSlice>) -> Vec<Call> {
        vec![
            Call::ApplyDeployment(ds),
            Call::ApplyService,
            Call::ListSlices(slices),
            Call::PatchPoolStatus,
        ]
    }

    /// A later reconcile that finds the status already right.
    pub fn pool_steady(ds: DeploymentStatus, slices: Vec<EndpointSlice>) -> Vec<Call> {
        vec![
            Call::ApplyDeployment(ds),
            Call::ApplyService,
            Call::ListSlices(slices),
        ]
    }

    /// A pool's first reconcile by this operator: each child is read before it is written
    /// (`deployment`, `service`: what the reads find; `None` is 404).
    pub fn pool_first(
        deployment: Option<Value>,
        service: Option<Value>,
        ds: DeploymentStatus,
        slices: Vec<EndpointSlice>,
    ) -> Vec<Call> {
        let mut calls = Self::pool_changed(ds, slices);
        calls.insert(0, Call::GetDeployment(deployment));
        calls.insert(2, Call::GetService(service));
        calls
    }

    /// A reconcile whose `failing`-th call (of [`Self::pool_changed`]) fails
    /// with `code`: the failure is then written to the pool's status (unless that write is
    /// what failed) and recorded as an Event.
    pub fn pool_fails(ds: DeploymentStatus, failing: usize, code: u16) -> Vec<Call> {
        let mut calls = Self::pool_changed(ds, Vec::new());
        let method = match calls[failing] {
            Call::GetDeployment(_) | Call::GetService(_) | Call::ListSlices(_) => Method::GET,
            _ => Method::PATCH,
        };
        let status_failed = matches!(calls[failing], Call::PatchPoolStatus);
        calls.truncate(failing);
        calls.push(Call::Fail(method, code));
        if !status_failed {
            calls.push(Call::PatchPoolStatus);
        }
        calls.push(Call::CreateEvent);
        calls
    }

    /// A plugin reconcile reading a ConfigMap and writing status.
    pub fn plugin_from_config_map(cm: Option<ConfigMap>) -> Vec<Call> {
        vec![
            Call::GetConfigMap(cm.map(Box::new)),
            Call::PatchPluginStatus,
        ]
    }
}

impl ApiServerVerifier {
    /// Answers `calls` in order, then reports what was sent. Panics (failing the test) on an
    /// unexpected request.
    pub fn run(self, calls: Vec<Call>) -> tokio::task::JoinHandle<(Vec<Captured>, Self)> {
        tokio::spawn(async move {
            let mut this = self;
            let mut captured = Vec::new();
            for call in calls {
                captured.push(this.answer(call).await);
            }
            (captured, this)
        })
    }

    /// Asserts that no further request arrives.
    pub async fn assert_idle(mut self) {
        let next = tokio::time::timeout(Duration::from_millis(50), self.0.next_request()).await;
        if let Ok(Some((req, _))) = next {
            panic!("unexpected extra request {} {}", req.method(), req.uri());
        }
    }

    async fn answer(&mut self, call: Call) -> Captured {
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("reconciler made no request");
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON request body")
        };
        let captured = Captured {
            method: method.clone(),
            path: path.clone(),
            query,
            body: body.clone(),
        };
        let check = |m: Method, suffix: &str| {
            assert_eq!(method, m, "method of {path}");
            assert!(path.ends_with(suffix), "expected …{suffix}, got {path}");
        };
        let (status, reply) = match call {
            Call::GetDeployment(found) => {
                check(Method::GET, "/deployments/llama");
                found.map_or((404, status_json(404, "NotFound")), |o| (200, o))
            }
            Call::GetService(found) => {
                check(Method::GET, "/services/llama");
                found.map_or((404, status_json(404, "NotFound")), |o| (200, o))
            }
            Call::ApplyDeployment(ds) => {
                check(Method::PATCH, "/deployments/llama");
                let mut obj = body;
                obj["metadata"]["generation"] = json!(1);
                if obj["metadata"]["uid"].is_null() {
                    obj["metadata"]["uid"] = json!(DEPLOYMENT_UID);
                }
                obj["status"] = serde_json::to_value(ds).expect("status");
                (200, obj)
            }
            Call::ApplyService => {
                check(Method::PATCH, "/services/llama");
                let mut obj = body;
                if obj["metadata"]["uid"].is_null() {
                    obj["metadata"]["uid"] = json!(SERVICE_UID);
                }
                (200, obj)
            }
            Call::ListSlices(items) => {
                check(Method::GET, "/endpointslices");
                let list = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
                    "metadata": {"resourceVersion": "1"}, "items": items});
                (200, list)
            }
            Call::PatchPoolStatus => {
                check(Method::PATCH, "/workerpools/llama/status");
                let mut obj = serde_json::to_value(pool("llama")).expect("pool");
                obj["status"] = body["status"].clone();
                (200, obj)
            }
            Call::GetConfigMap(Some(cm)) => {
                check(Method::GET, "/configmaps/picker-wasm");
                (200, serde_json::to_value(cm).expect("cm"))
            }
            Call::GetConfigMap(None) => {
                check(Method::GET, "/configmaps/picker-wasm");
                (404, status_json(404, "NotFound"))
            }
            Call::PatchPluginStatus => {
                check(Method::PATCH, "/routerplugins/pick/status");
                let mut obj = serde_json::to_value(plugin("pick")).expect("plugin");
                obj["status"] = body["status"].clone();
                (200, obj)
            }
            Call::GetLease(Some(lease)) => {
                check(Method::GET, "/leases/switchyard-operator");
                (200, lease)
            }
            Call::GetLease(None) => {
                check(Method::GET, "/leases/switchyard-operator");
                (404, status_json(404, "NotFound"))
            }
            Call::CreateLease => {
                check(Method::POST, "/leases");
                (201, body)
            }
            Call::CreateEvent => {
                check(Method::POST, "/events");
                assert!(path.starts_with("/apis/events.k8s.io/v1/"), "{path}");
                (201, body)
            }
            Call::PatchEvent => {
                assert_eq!(method, Method::PATCH, "method of {path}");
                assert!(path.starts_with("/apis/events.k8s.io/v1/"), "{path}");
                (200, body)
            }
            Call::ListPools(items) => {
                check(Method::GET, "/workerpools");
                let list = json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPoolList",
                    "metadata": {"resourceVersion": "1"}, "items": items});
                (200, list)
            }
            Call::PatchAdapterStatus => {
                check(Method::PATCH, "/loraadapters/sql/status");
                let mut obj = serde_json::to_value(lora_adapter(2)).expect("adapter");
                obj["status"] = body["status"].clone();
                (200, obj)
            }
            Call::PatchAdapter => {
                check(Method::PATCH, "/loraadapters/sql");
                let mut obj = serde_json::to_value(lora_adapter(2)).expect("adapter");
                obj["metadata"]["finalizers"] = body["metadata"]["finalizers"].clone();
                (200, obj)
            }
            Call::Fail(m, code) => {
                assert_eq!(method, m, "method of {path}");
                (code, status_json(code, "InternalError"))
            }
        };
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("status"))
            .body(Body::from(serde_json::to_vec(&reply).expect("reply")))
            .expect("response");
        send.send_response(response);
        captured
    }
}

fn status_json(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("mocked {reason}"), "reason": reason, "code": code})
}

/// A context on a mocked API server with the given validator.
/// A context whose operator applied pool `llama`'s children before (their uids are known),
/// so a reconcile writes without reading first: what most tests are about.
pub fn context(validator: FakeValidator, urls: StaticUrls) -> (Arc<Context>, ApiServerVerifier) {
    let (ctx, api) = fresh_context(validator, urls);
    ctx.children
        .applied("Deployment", NS, "llama", Some(DEPLOYMENT_UID.into()));
    ctx.children
        .applied("Service", NS, "llama", Some(SERVICE_UID.into()));
    (ctx, api)
}

/// A context that has applied nothing yet (a freshly started operator).
pub fn fresh_context(
    validator: FakeValidator,
    urls: StaticUrls,
) -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let ctx = Context::with_parts(
        client,
        Arc::new(Metrics::default()),
        Arc::new(validator),
        Arc::new(urls),
    );
    (Arc::new(ctx), ApiServerVerifier(handle))
}

/// Waits for the verifier with a timeout, so a reconcile that stops calling fails fast.
pub async fn finish(
    handle: tokio::task::JoinHandle<(Vec<Captured>, ApiServerVerifier)>,
) -> Vec<Captured> {
    let (captured, verifier) = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("scenario timed out")
        .expect("scenario panicked");
    verifier.assert_idle().await;
    captured
}

impl ComponentValidator for FakeValidator {
    fn detect_kinds(&self, _bytes: &[u8]) -> Result<Vec<PluginKind>, ValidationError> {
        self.0.clone()
    }
}

impl UrlFetcher for StaticUrls {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, switchyard_k8s::Result<Bytes>> {
        let found = self.0.get(url).cloned();
        Box::pin(async move {
            found.ok_or_else(|| switchyard_k8s::Error::Fetch {
                url: url.to_string(),
                message: "HTTP 404 Not Found".to_string(),
            })
        })
    }
}

/// A WorkerPool `name` in [`NS`] serving `meta-llama/Llama-3.1-8B-Instruct` with vLLM.
pub fn pool(name: &str) -> WorkerPool {
    let mut p = WorkerPool::new(
        name,
        WorkerPoolSpec {
            model: "meta-llama/Llama-3.1-8B-Instruct".to_string(),
            engine: switchyard_k8s::EngineKind::Vllm,
            api: Default::default(),
            apis: Vec::new(),
            replicas: 2,
            template: WorkerTemplate {
                image: "vllm/vllm-openai:v0.8.5".to_string(),
                ..WorkerTemplate::default()
            },
            port: 8000,
            health: Default::default(),
            routing: Default::default(),
            role: Default::default(),
            kv_events: None,
            api_key: None,
        },
    );
    p.metadata.namespace = Some(NS.to_string());
    p.metadata.uid = Some("uid-1".to_string());
    p.metadata.generation = Some(1);
    p
}

/// Fluent changes to test pools.
pub trait PoolExt: Sized {
    fn replicas(self, n: i32) -> Self;
    fn generation(self, g: i64) -> Self;
    fn deleting(self) -> Self;
    fn with_status(self, status: switchyard_k8s::WorkerPoolStatus) -> Self;
}

impl PoolExt for WorkerPool {
    fn replicas(mut self, n: i32) -> Self {
        self.spec.replicas = n;
        self
    }
    fn generation(mut self, g: i64) -> Self {
        self.metadata.generation = Some(g);
        self
    }
    fn deleting(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        self
    }
    fn with_status(mut self, status: switchyard_k8s::WorkerPoolStatus) -> Self {
        self.status = Some(status);
        self
    }
}

/// A deployment status with `ready` of `replicas` ready and rolled out at generation 1.
pub fn deploy_status(replicas: i32, ready: i32) -> DeploymentStatus {
    DeploymentStatus {
        replicas: Some(replicas),
        ready_replicas: Some(ready),
        updated_replicas: Some(replicas),
        available_replicas: Some(ready),
        observed_generation: Some(1),
        ..DeploymentStatus::default()
    }
}

/// An EndpointSlice of Service `service` with `(ip, ready)` endpoints on port 8000.
pub fn slice(service: &str, endpoints: &[(&str, bool)]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-abcde")),
            namespace: Some(NS.to_string()),
            labels: Some(
                [
                    (
                        "kubernetes.io/service-name".to_string(),
                        service.to_string(),
                    ),
                    ("switchyard.dev/pool".to_string(), service.to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_string(),
        endpoints: endpoints
            .iter()
            .map(|(ip, ready)| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".to_string()),
            port: Some(8000),
            ..EndpointPort::default()
        }]),
    }
}

/// Bytes standing in for a component.
pub const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0fake component";

/// A picker RouterPlugin `name` from ConfigMap `picker-wasm`, digest of [`COMPONENT`].
pub fn plugin(name: &str) -> RouterPlugin {
    let mut p = RouterPlugin::new(
        name,
        RouterPluginSpec {
            kind: PluginKind::Picker,
            source: PluginSource {
                config_map: Some(ConfigMapSource {
                    name: "picker-wasm".to_string(),
                    key: "plugin.wasm".to_string(),
                }),
                url: None,
                sha256: sha256_hex(COMPONENT),
            },
            config: Some(json!({"threshold": 4})),
            weight: 1.0,
            order: 0,
            failure_policy: Default::default(),
            limits: Default::default(),
            mode: Default::default(),
            applies_to: Default::default(),
        },
    );
    p.metadata.namespace = Some(NS.to_string());
    p.metadata.uid = Some("uid-2".to_string());
    p.metadata.generation = Some(1);
    p
}

/// The ConfigMap `picker-wasm` holding `bytes` under `plugin.wasm`.
pub fn config_map(bytes: &[u8]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("picker-wasm".to_string()),
            namespace: Some(NS.to_string()),
            ..ObjectMeta::default()
        },
        binary_data: Some([("plugin.wasm".to_string(), ByteString(bytes.to_vec()))].into()),
        ..ConfigMap::default()
    }
}

/// A LoraAdapter `sql` in [`NS`] of the [`pool`] fixtures' model, loaded from `/adapters/sql`.
pub fn lora_adapter(min_replicas: i32) -> switchyard_k8s::LoraAdapter {
    let mut a = switchyard_k8s::LoraAdapter::new(
        "sql",
        switchyard_k8s::LoraAdapterSpec {
            base_model: "meta-llama/Llama-3.1-8B-Instruct".to_string(),
            source: "/adapters/sql".to_string(),
            pools: Vec::new(),
            min_replicas,
        },
    );
    a.metadata.namespace = Some(NS.to_string());
    a.metadata.uid = Some("uid-sql".to_string());
    a.metadata.generation = Some(1);
    a.metadata.finalizers = Some(vec![crate::loraadapter::FINALIZER.to_string()]);
    a
}
