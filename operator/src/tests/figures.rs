//! Reconcile figures against the mocked API server: API calls per reconcile and wall time per
//! reconcile (mock overhead included), printed with `--nocapture`.

use std::sync::Arc;
use std::time::Instant;

use switchyard_k8s::PluginKind;

use crate::fixtures::*;

const ROUNDS: u32 = 200;

#[tokio::test]
async fn reconcile_figures() {
    let slices = vec![slice("llama", &[("10.0.0.7", true), ("10.0.0.8", true)])];
    // Steady-state pool: status already correct.
    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let handle = api.run(Scenario::pool_changed(deploy_status(2, 2), slices.clone()));
    crate::workerpool::reconcile(Arc::new(pool("llama")), ctx.clone())
        .await
        .unwrap();
    let calls = finish(handle).await;
    let status: switchyard_k8s::WorkerPoolStatus =
        serde_json::from_value(calls[3].body["status"].clone()).unwrap();
    let steady = Arc::new(pool("llama").with_status(status));

    let (ctx, api) = context(FakeValidator(Ok(vec![])), StaticUrls::default());
    let script = (0..ROUNDS)
        .flat_map(|_| Scenario::pool_steady(deploy_status(2, 2), slices.clone()))
        .collect();
    let handle = api.run(script);
    let start = Instant::now();
    for _ in 0..ROUNDS {
        crate::workerpool::reconcile(steady.clone(), ctx.clone())
            .await
            .unwrap();
    }
    let pool_us = start.elapsed().as_micros() as f64 / f64::from(ROUNDS);
    let pool_calls = finish(handle).await.len() as f64 / f64::from(ROUNDS);

    let (ctx, api) = context(
        FakeValidator(Ok(vec![PluginKind::Picker])),
        StaticUrls::default(),
    );
    let script = (0..ROUNDS)
        .flat_map(|_| Scenario::plugin_from_config_map(Some(config_map(COMPONENT))))
        .collect();
    let handle = api.run(script);
    let p = Arc::new(plugin("pick"));
    let start = Instant::now();
    for _ in 0..ROUNDS {
        crate::routerplugin::reconcile(p.clone(), ctx.clone())
            .await
            .unwrap();
    }
    let plugin_us = start.elapsed().as_micros() as f64 / f64::from(ROUNDS);
    let plugin_calls = finish(handle).await.len() as f64 / f64::from(ROUNDS);

    println!("reconcile figures (mocked API, {ROUNDS} rounds, debug build):");
    println!("  workerpool create/changed: 4 API calls (apply Deployment, apply Service, list EndpointSlices, apply status)");
    println!("  workerpool steady state : {pool_calls:.1} API calls, {pool_us:.0} us/reconcile");
    println!("  routerplugin validate   : {plugin_calls:.1} API calls, {plugin_us:.0} us/reconcile (fake validator)");
    assert_eq!(pool_calls, 3.0);
    assert_eq!(plugin_calls, 2.0);
}
