//! Per-decision cost of the Rust picker and scorer at 8/64/512 candidates, and the cost of a
//! fresh instance. Targets (DESIGN.md): <= 1 us at 64 candidates, <= 3 us at 512.
//!
//! Needs the built plugins: scripts/build-plugins.sh rust

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchyard_plugin_host::{
    sample_candidates, sample_request, sample_topology, HostConfig, LoadedPlugin, PluginHost,
    PluginLimits, BENCH_SIZES,
};

fn load(host: &PluginHost, name: &str) -> LoadedPlugin {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm")
        .join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): run scripts/build-plugins.sh",
            path.display()
        )
    });
    // The budget is wall-clock: on a shared, busy machine a descheduled thread can blow a
    // few-ms budget. The bench measures cost, so it gives itself room.
    let limits = PluginLimits {
        decision_budget: Duration::from_secs(1),
        ..PluginLimits::default()
    };
    let plugin = host
        .load(name, &bytes, limits, "{}")
        .unwrap_or_else(|e| panic!("load plugin: {e}"));
    plugin
        .on_topology(sample_topology(512))
        .unwrap_or_else(|e| panic!("topology: {e}"));
    plugin
}

fn decisions(c: &mut Criterion) {
    let host = PluginHost::new(HostConfig::default()).unwrap_or_else(|e| panic!("host: {e}"));
    let picker = load(&host, "round-robin");
    let scorer = load(&host, "least-loaded");
    let request = sample_request();
    let mut group = c.benchmark_group("plugin_call");
    for n in BENCH_SIZES {
        let candidates = sample_candidates(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new("round-robin pick", n),
            &candidates,
            |b, cands| {
                b.iter(|| {
                    picker
                        .pick(&request, cands)
                        .unwrap_or_else(|e| panic!("pick: {e}"))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("least-loaded score", n),
            &candidates,
            |b, cands| {
                b.iter(|| {
                    scorer
                        .score(&request, cands)
                        .unwrap_or_else(|e| panic!("score: {e}"))
                })
            },
        );
    }
    group.finish();
}

fn instantiation(c: &mut Criterion) {
    let host = PluginHost::new(HostConfig::default()).unwrap_or_else(|e| panic!("host: {e}"));
    let plugin = load(&host, "round-robin");
    // What re-instantiating after a trap costs: a new store, InstancePre::instantiate, configure.
    c.bench_function("instantiate round-robin (InstancePre + configure)", |b| {
        b.iter(|| {
            plugin
                .instantiate_fresh()
                .unwrap_or_else(|e| panic!("instantiate: {e}"))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = decisions, instantiation
}
criterion_main!(benches);
