//! Reconcile figures against the mocked API server: API calls per reconcile (counted from the
//! requests the mock served) and wall time per reconcile (mock overhead included), printed
//! with `--nocapture` and quoted in docs/operator.md.

use std::sync::Arc;
use std::time::Instant;

use switchyard_k8s::PluginKind;

use crate::fixtures::*;

const ROUNDS: u32 = 200;

/// API calls per round and microseconds per round of `ROUNDS` reconciles answered by `script`.
async fn measure<F, Fut>(
    ctx_calls: (Arc<crate::Context>, ApiServerVerifier),
    script: Vec<Call>,
    reconcile: F,
) -> (f64, f64)
where
    F: Fn(Arc<crate::Context>) -> Fut,
    Fut: std::future::Future<Output = crate::Result<kube::runtime::controller::Action>>,
{
    let (ctx, api) = ctx_calls;
    let handle = api.run(script);
    let start = Instant::now();
    for _ in 0..ROUNDS {
        reconcile(ctx.clone()).await.expect("reconcile");
    }
    let us = start.elapsed().as_micros() as f64 / f64::from(ROUNDS);
    let served = finish(handle).await.len() as f64;
    (served / f64::from(ROUNDS), us)
}

fn repeat(calls: Vec<Call>) -> Vec<Call> {
    (0..ROUNDS).flat_map(|_| calls.clone()).collect()
}

#[tokio::test]
async fn reconcile_figures() {
    let slices = vec![slice("llama", &[("10.0.0.7", true), ("10.0.0.8", true)])];
    let new_pool = Arc::new(pool("llama"));

    // A pool without status (just created, or changed): every reconcile writes status.
    let (changed_calls, changed_us) = measure(
        context(FakeValidator(Ok(vec![])), StaticUrls::default()),
        repeat(Scenario::pool_changed(deploy_status(2, 2), slices.clone())),
        |ctx| crate::workerpool::reconcile(new_pool.clone(), ctx),
    )
    .await;

    // The status that reconcile writes, so the steady-state pool already has it.
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), slices.clone()));
    crate::workerpool::reconcile(new_pool.clone(), ctx)
        .await
        .unwrap();
    let calls = finish(handle).await;
    let status: switchyard_k8s::WorkerPoolStatus =
        serde_json::from_value(calls[3].body["status"].clone()).unwrap();
    let steady = Arc::new(pool("llama").with_status(status));
    let (steady_calls, steady_us) = measure(
        context(FakeValidator(Ok(vec![])), StaticUrls::default()),
        repeat(Scenario::pool_steady(deploy_status(2, 2), slices.clone())),
        |ctx| crate::workerpool::reconcile(steady.clone(), ctx),
    )
    .await;

    // A plugin from a ConfigMap, validated each time (the validator is a fake: the real one
    // compiles the component, see docs/benchmarks.md for compile times).
    let p = Arc::new(plugin("pick"));
    let (plugin_calls, plugin_us) = measure(
        context(
            FakeValidator(Ok(vec![PluginKind::Picker])),
            StaticUrls::default(),
        ),
        repeat(Scenario::plugin_from_config_map(Some(config_map(
            COMPONENT,
        )))),
        |ctx| crate::routerplugin::reconcile(p.clone(), ctx),
    )
    .await;

    // A pool using every new field (model cache, KV-event bridge, pull secrets, affinity,
    // volumes, role, API key, sidecars): still one Deployment apply; the fields cost bytes,
    // not calls.
    let mut full = pool("llama");
    full.spec.role = switchyard_k8s::WorkerRole::Prefill;
    full.spec.template.args = vec!["--model".into(), "m".into()];
    full.spec.template.model_cache = Some(switchyard_k8s::ModelCache {
        persistent_volume_claim: Some("hf".into()),
        host_path: None,
        mount_path: "/models".into(),
    });
    full.spec.kv_events = Some(switchyard_k8s::KvEvents {
        bridge: true,
        nats_url: Some("nats://nats:4222".into()),
        image: Some("switchyard:0.1.0".into()),
        block_size: 16,
        zmq_port: 5557,
    });
    full.spec.template.priority_class_name = Some("gpu".into());
    full.spec.template.runtime_class_name = Some("nvidia".into());
    full.spec.api_key = Some(switchyard_k8s::workerpool::ApiKeyRef {
        secret_name: "llama-key".into(),
        key: "api-key".into(),
        frontend_key: None,
    });
    full.spec.template.sidecars =
        serde_json::from_value(serde_json::json!([{"name": "shipper", "image": "fluent-bit:3"}]))
            .unwrap();
    let full = Arc::new(full);
    let (full_calls, full_us) = measure(
        context(FakeValidator(Ok(vec![])), StaticUrls::default()),
        repeat(Scenario::pool_changed(deploy_status(2, 2), slices.clone())),
        |ctx| crate::workerpool::reconcile(full.clone(), ctx),
    )
    .await;
    let body_bytes = |p: &switchyard_k8s::WorkerPool| {
        let d = crate::manifests::deployment(p, &Default::default()).unwrap();
        serde_json::to_vec(&d).unwrap().len()
    };
    let (base_bytes, full_bytes) = (body_bytes(&new_pool), body_bytes(&full));

    // A reconcile whose Service apply fails: the failure costs a status write and an Event.
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_fails(deploy_status(2, 2), 1, 422));
    let _ = crate::workerpool::reconcile(new_pool.clone(), ctx).await;
    let failed_calls = finish(handle).await.len();

    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("reconcile figures (mocked API, {ROUNDS} rounds each, {build} build):");
    println!("  workerpool created/changed: {changed_calls:.1} API calls (apply Deployment, apply Service, list EndpointSlices, apply status), {changed_us:.0} us/reconcile");
    println!("  workerpool steady state   : {steady_calls:.1} API calls (no status write), {steady_us:.0} us/reconcile");
    println!("  routerplugin validate     : {plugin_calls:.1} API calls (get ConfigMap, apply status), {plugin_us:.0} us/reconcile (fake validator)");
    println!("  workerpool, every new field: {full_calls:.1} API calls, {full_us:.0} us/reconcile; Deployment apply body {base_bytes} -> {full_bytes} bytes");
    println!("  workerpool, Service apply fails: {failed_calls} API calls (apply Deployment, apply Service (422), apply status Reconciled=False, create Event)");
    assert_eq!(changed_calls, 4.0);
    assert_eq!(full_calls, 4.0);
    assert_eq!(failed_calls, 4);
    assert_eq!(steady_calls, 3.0);
    assert_eq!(plugin_calls, 2.0);
}
