//! What a WorkerPool's pods look like: probes sized for multi-minute model loads, a progress
//! deadline above the startup allowance, and the pod-template fields of the pool's spec — each
//! checked on the Deployment the reconciler applies through the mocked API.

use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_k8s::WorkerPool;

use crate::fixtures::*;
use crate::workerpool::reconcile;

/// Reconciles `pool` once against the mocked API and returns the applied Deployment.
async fn applied_deployment(pool: WorkerPool) -> Value {
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), vec![]));
    reconcile(Arc::new(pool), ctx).await.unwrap();
    let calls = finish(handle).await;
    calls[0].body.clone()
}

#[tokio::test]
async fn probes_are_separate_and_the_progress_deadline_exceeds_startup() {
    let deploy = applied_deployment(pool("llama")).await;
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    // Startup: 1800 s of model loading in 10 s steps.
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["startupProbe"]["periodSeconds"], 10);
    assert_eq!(c["startupProbe"]["failureThreshold"], 180);
    // Readiness: quick, on the health path.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
    // Liveness: a TCP check, lenient, so a busy engine is not restarted.
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], "http");
    assert!(c["livenessProbe"].get("httpGet").is_none());
    assert_eq!(c["livenessProbe"]["timeoutSeconds"], 10);
    assert_eq!(
        c["livenessProbe"]["periodSeconds"]
            .as_i64()
            .zip(c["livenessProbe"]["failureThreshold"].as_i64())
            .map(|(p, f)| p * f),
        Some(120),
        "two minutes of failures before a restart"
    );
    assert_eq!(deploy["spec"]["progressDeadlineSeconds"], json!(1800 + 600));
}

#[tokio::test]
async fn a_liveness_path_makes_liveness_an_http_check() {
    let mut p = pool("llama");
    p.spec.health.liveness_path = Some("/ping".into());
    p.spec.health.startup_seconds = 95;
    let deploy = applied_deployment(p).await;
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/ping");
    assert!(c["livenessProbe"].get("tcpSocket").is_none());
    assert_eq!(
        c["startupProbe"]["failureThreshold"], 10,
        "95 s rounds up to ten 10 s periods"
    );
    assert_eq!(deploy["spec"]["progressDeadlineSeconds"], 695);
}
