//! The WorkerPool controller end to end on a mocked API server, with paused time: the real
//! kube `Controller` lists the pool, the reconcile's Deployment apply fails three times, and
//! the controller retries on the error policy's schedule (1 s, 2 s, 4 s) until it succeeds —
//! the backoff as the controller applies it, not just what `error_policy` returns.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::{Api, Client};
use parking_lot::Mutex;
use serde_json::{json, Value};
use switchyard_k8s::WorkerPool;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::time::Instant;

use crate::controller::pool_controller;
use crate::fixtures::*;
use crate::metrics::Metrics;
use crate::workerpool::{error_policy, reconcile};
use crate::Context;

/// Answers every request a pool controller makes; Deployment applies fail `failures` times.
/// Sends the (virtual) time of each Deployment apply to `applies`.
fn serve(failures: u32, applies: UnboundedSender<Instant>) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let failed = Arc::new(Mutex::new(0u32));
    tokio::spawn(async move {
        // Watches are parked, never answered: the test drives everything through the lists.
        let mut parked = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or_default().to_string();
            if query.contains("watch=true") {
                parked.push(respond);
                continue;
            }
            let bytes = request.into_body().collect_bytes().await.expect("body");
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (code, reply) = match (&method, path.rsplit('/').next().unwrap_or_default()) {
                (&Method::GET, "workerpools") => (200, list(vec![json!(pool("llama"))])),
                (&Method::GET, "deployments" | "services" | "endpointslices") => {
                    (200, list(vec![]))
                }
                // The first write of each child reads it first ([`crate::children`]): absent.
                (&Method::GET, "llama") => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "not found", "reason": "NotFound", "code": 404}),
                ),
                (&Method::PATCH, "llama") if path.contains("/deployments/") => {
                    let _ = applies.send(Instant::now());
                    let mut n = failed.lock();
                    if *n < failures {
                        *n += 1;
                        (
                            500,
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": "etcd timeout", "reason": "InternalError", "code": 500}),
                        )
                    } else {
                        let mut obj = body;
                        obj["metadata"]["generation"] = json!(1);
                        obj["status"] = json!(deploy_status(2, 2));
                        (200, obj)
                    }
                }
                (&Method::PATCH, "llama") => (200, body),
                (&Method::PATCH, "status") => {
                    let mut obj = json!(pool("llama"));
                    obj["status"] = body["status"].clone();
                    (200, obj)
                }
                // Each failure is recorded as an Event (a repeat patches its series).
                (&Method::POST, "events") => (201, body),
                (&Method::PATCH, _) if path.contains("/events/") => (200, body),
                _ => panic!("unexpected {method} {path}?{query}"),
            };
            let response = Response::builder()
                .status(StatusCode::from_u16(code).expect("status"))
                .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                .expect("response");
            respond.send_response(response);
        }
    });
    Client::new(service, NS)
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})
}

#[tokio::test(start_paused = true)]
async fn the_controller_retries_failed_reconciles_with_growing_delays() {
    let (tx, mut applies) = unbounded_channel();
    let client = serve(3, tx);
    let ctx = Arc::new(Context::with_parts(
        client.clone(),
        Arc::new(Metrics::default()),
        Arc::new(FakeValidator(Ok(vec![]))),
        Arc::new(StaticUrls::default()),
    ));
    let pools: Api<WorkerPool> = Api::namespaced(client, NS);
    let controller = pool_controller(pools, &ctx);
    let store = controller.store();
    let run = controller
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(run);

    let mut at = Vec::new();
    for _ in 0..4 {
        let t = tokio::time::timeout(Duration::from_secs(60), applies.recv())
            .await
            .expect("the controller retried")
            .expect("mock running");
        at.push(t);
    }
    assert_eq!(store.state().len(), 1, "the pool watch listed the pool");
    // On the paused clock the gaps are the scheduled delays: the n-th failure waits 2^(n-1) s.
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, want) in gaps.iter().zip([1u64, 2, 4]) {
        let want = Duration::from_secs(want);
        assert!(
            *gap >= want && *gap < want * 2,
            "gaps {gaps:?}: expected the {want:?} step"
        );
    }
    // The fourth attempt succeeded: the pool's backoff is reset and three errors were counted.
    tokio::time::timeout(Duration::from_secs(5), async {
        while ctx.backoff.failures("workerpool/default/llama") != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("backoff reset after the successful reconcile");
    let text = ctx.metrics.encode();
    assert!(
        text.contains(
            "switchyard_operator_reconcile_errors_total{controller=\"workerpool\",error=\"api\"} 3"
        ),
        "{text}"
    );
    task.abort();
}
