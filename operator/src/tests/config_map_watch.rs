//! The RouterPlugin controller's ConfigMap watch, end to end on a mocked API server: the
//! controller lists and watches, a ConfigMap changes, and the plugin that reads it is
//! re-validated at once — while a change to another ConfigMap triggers nothing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::{Method, Request, Response};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{json, Value};
use switchyard_k8s::{PluginKind, RouterPlugin};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::controller::{plugin_controller, running};
use crate::fixtures::*;
use crate::metrics::Metrics;
use crate::routerplugin::{error_policy, reconcile};
use crate::server::Readiness;
use crate::Context;

type Pending = (
    Request<Body>,
    tower_test::mock::SendResponse<Response<Body>>,
);

/// Requests sorted by what they are for, so the test answers them in its own order.
struct Queues {
    plugin_watch: UnboundedReceiver<Pending>,
    plugin_status: UnboundedReceiver<Pending>,
    config_map_watch: UnboundedReceiver<Pending>,
    config_map_get: UnboundedReceiver<Pending>,
}

fn routed() -> (Client, Queues) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (pw, plugin_watch) = unbounded_channel();
    let (ps, plugin_status) = unbounded_channel();
    let (cw, config_map_watch) = unbounded_channel();
    let (cg, config_map_get) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(pending) = handle.next_request().await {
            let path = pending.0.uri().path().to_string();
            let queue = if path.ends_with("/routerplugins") {
                &pw
            } else if path.ends_with("/routerplugins/pick/status") {
                &ps
            } else if path.ends_with("/configmaps") {
                &cw
            } else if path.contains("/configmaps/") {
                &cg
            } else {
                panic!("unexpected request {} {path}", pending.0.method());
            };
            let _ = queue.send(pending);
        }
    });
    let queues = Queues {
        plugin_watch,
        plugin_status,
        config_map_watch,
        config_map_get,
    };
    (Client::new(service, NS), queues)
}

async fn next(rx: &mut UnboundedReceiver<Pending>) -> Pending {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no request within 5s")
        .expect("mock closed")
}

fn reply(pending: Pending, body: &Value) {
    send(pending.1, serde_json::to_vec(body).expect("json"));
}

fn send(to: tower_test::mock::SendResponse<Response<Body>>, bytes: Vec<u8>) {
    let response = Response::builder()
        .body(Body::from(bytes))
        .expect("response");
    to.send_response(response);
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "10"}, "items": items})
}

/// Answers a status patch with the patched plugin and returns its `Validated` reason.
async fn validated_reason(pending: Pending) -> String {
    let (request, respond) = pending;
    assert_eq!(request.method(), Method::PATCH);
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    let body: Value = serde_json::from_slice(&bytes).expect("JSON patch");
    let mut obj = serde_json::to_value(plugin("pick")).expect("plugin");
    obj["status"] = body["status"].clone();
    send(respond, serde_json::to_vec(&obj).expect("json"));
    let conditions = body["status"]["conditions"].as_array().cloned();
    conditions
        .unwrap_or_default()
        .iter()
        .find(|c| c["type"] == "Validated")
        .and_then(|c| c["reason"].as_str().map(str::to_string))
        .expect("a Validated condition")
}

fn config_map_modified(name: &str, rv: &str) -> Value {
    json!({"type": "MODIFIED", "object": {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": rv}}})
}

#[tokio::test]
async fn a_changed_config_map_revalidates_the_plugins_reading_it() {
    let (client, mut api) = routed();
    let ctx = Arc::new(Context::with_parts(
        client.clone(),
        Arc::new(Metrics::default()),
        Arc::new(FakeValidator(Ok(vec![PluginKind::Picker]))),
        Arc::new(StaticUrls::default()),
    ));
    let plugins: Api<RouterPlugin> = Api::namespaced(client, NS);
    let controller = plugin_controller(plugins, &ctx);
    // What `/readyz` waits for: the primary watch's first list.
    let ready = Arc::new(Readiness::default());
    let store = controller.store();
    let run = controller
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(running(run, store, {
        let ready = ready.clone();
        move || ready.set(true)
    }));

    // Initial lists; the ConfigMap watch asks for metadata only (components are large).
    let req = next(&mut api.plugin_watch).await;
    tokio::task::yield_now().await;
    assert!(!ready.get(), "not listed before the list answer");
    reply(
        req,
        &list(vec![serde_json::to_value(plugin("pick")).expect("plugin")]),
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        while !ready.get() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("ready once the plugin list is answered");
    let req = next(&mut api.config_map_watch).await;
    let accept = req
        .0
        .headers()
        .get("accept")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    assert!(
        accept
            .as_deref()
            .unwrap_or_default()
            .contains("PartialObjectMetadataList"),
        "{accept:?}"
    );
    reply(req, &list(vec![]));

    // First reconcile: the ConfigMap still holds other bytes.
    let req = next(&mut api.config_map_get).await;
    reply(
        req,
        &serde_json::to_value(config_map(b"old bytes")).expect("cm"),
    );
    let reason = validated_reason(next(&mut api.plugin_status).await).await;
    assert_eq!(reason, "DigestMismatch");
    // Requeued for the 10-minute resync: nothing happens on its own now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        api.config_map_get.try_recv().is_err(),
        "no reconcile before the change"
    );

    // Another ConfigMap changes, then the plugin's: one reconcile, with the new bytes.
    let req = next(&mut api.config_map_watch).await;
    let events: Vec<u8> = [
        config_map_modified("unrelated", "11"),
        config_map_modified("picker-wasm", "12"),
    ]
    .iter()
    .flat_map(|e| {
        let mut line = serde_json::to_vec(e).expect("event");
        line.push(b'\n');
        line
    })
    .collect();
    req.1.send_response(
        Response::builder()
            .body(Body::from(events))
            .expect("response"),
    );
    let req = next(&mut api.config_map_get).await;
    assert!(
        req.0.uri().path().ends_with("/configmaps/picker-wasm"),
        "{}",
        req.0.uri()
    );
    reply(
        req,
        &serde_json::to_value(config_map(COMPONENT)).expect("cm"),
    );
    let reason = validated_reason(next(&mut api.plugin_status).await).await;
    assert_eq!(reason, "Validated");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        api.config_map_get.try_recv().is_err(),
        "exactly one reconcile per change"
    );
    task.abort();
}
