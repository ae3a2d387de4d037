//! A stand-in for the Kubernetes API server, just enough for the frontend's discovery: no API
//! server can run on this machine, so this answers the list and watch requests of
//! `--discovery kubernetes` from fixed objects.
//!
//! Lists of WorkerPools, EndpointSlices and LoraAdapters return the given objects; every other
//! list (RouterPlugins, ConfigMap metadata) is empty; watches are held open without events. The
//! first WorkerPool list is answered only once the test calls [`FakeApi::release_lists`], so a
//! test can observe the frontend before discovery has listed.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

type Body = BoxBody<Bytes, Infallible>;

/// The running fake and its kubeconfig.
pub struct FakeApi {
    pub kubeconfig: tempfile::NamedTempFile,
    release: watch::Sender<bool>,
    /// Notified when the first WorkerPool list request arrives.
    pub pool_list_seen: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

struct Objects {
    pools: Vec<Value>,
    slices: Vec<Value>,
    adapters: Vec<Value>,
}

impl FakeApi {
    /// Serves `pools` and `slices` in namespace `default`.
    pub async fn start(pools: Vec<Value>, slices: Vec<Value>) -> FakeApi {
        Self::start_with_adapters(pools, slices, Vec::new()).await
    }

    /// As [`FakeApi::start`], and lists `adapters` as the LoraAdapters.
    pub async fn start_with_adapters(
        pools: Vec<Value>,
        slices: Vec<Value>,
        adapters: Vec<Value>,
    ) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let kubeconfig = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            kubeconfig.path(),
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
                 clusters: [{{name: fake, cluster: {{server: \"http://{addr}\"}}}}]\n\
                 users: [{{name: fake, user: {{token: fake-token}}}}]\n\
                 contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n"
            ),
        )
        .unwrap();
        let (release, released) = watch::channel(false);
        let pool_list_seen = Arc::new(Notify::new());
        let objects = Arc::new(Objects {
            pools,
            slices,
            adapters,
        });
        let seen = Arc::clone(&pool_list_seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (objects, released, seen) =
                    (Arc::clone(&objects), released.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (objects, released, seen) =
                            (Arc::clone(&objects), released.clone(), Arc::clone(&seen));
                        async move { Ok::<_, Infallible>(answer(req, &objects, released, &seen).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeApi {
            kubeconfig,
            release,
            pool_list_seen,
            task,
        }
    }

    /// Lets the held WorkerPool list (and every later one) be answered.
    pub fn release_lists(&self) {
        self.release.send_replace(true);
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    objects: &Objects,
    mut released: watch::Receiver<bool>,
    seen: &Notify,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    if query.contains("watch=true") || query.contains("watch=1") {
        // A watch that never reports anything (and never ends while the test runs).
        let pending = futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>();
        return Response::new(StreamBody::new(pending).boxed());
    }
    let items = if path.ends_with("/workerpools") {
        seen.notify_one();
        let _ = released.wait_for(|r| *r).await;
        objects.pools.clone()
    } else if path.ends_with("/endpointslices") {
        objects.slices.clone()
    } else if path.ends_with("/loraadapters") {
        objects.adapters.clone()
    } else {
        Vec::new()
    };
    let list = json!({"apiVersion": "v1", "kind": "List",
        "metadata": {"resourceVersion": "1"}, "items": items});
    let mut response = Response::new(Full::new(Bytes::from(list.to_string())).boxed());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A WorkerPool `name` in `default` serving `model`.
pub fn pool(name: &str, model: &str) -> Value {
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": "1", "generation": 1, "uid": name},
        "spec": {"model": model, "engine": "mocker", "replicas": 1, "template": {"image": "switchyard"}}})
}

/// An EndpointSlice of pool `name` whose one endpoint `url` (`ip:port`) is ready or not.
pub fn slice(name: &str, ip: &str, port: u16, ready: bool) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-x"), "namespace": "default", "resourceVersion": "1",
                     "labels": {"kubernetes.io/service-name": name, "switchyard.dev/pool": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": format!("{name}-0")}}],
        "ports": [{"name": "http", "port": port}]})
}

/// A LoraAdapter `name` in `namespace` of `base`.
pub fn lora_adapter(namespace: &str, name: &str, base: &str) -> Value {
    json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "LoraAdapter",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1", "generation": 1,
                     "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"baseModel": base, "source": format!("/adapters/{name}"), "minReplicas": 1}})
}
