//! Native policy selection cost at 8 / 64 / 512 candidates (ranked list of 3: 1 + retries).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use switchyard_benches::instances;
use switchyard_runtime::policy::{build, POLICY_NAMES};
use switchyard_runtime::{PolicyConfig, RouteContext};

fn select(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_select");
    for n in [8usize, 64, 512] {
        let inst = instances(n);
        // Uneven load so load-aware policies have work to do.
        let _guards: Vec<_> = inst
            .iter()
            .enumerate()
            .flat_map(|(i, x)| (0..i % 7).map(|_| x.start_request()).collect::<Vec<_>>())
            .collect();
        let refs: Vec<_> = inst.iter().collect();
        for name in POLICY_NAMES {
            let policy = build(&PolicyConfig {
                policy: *name,
                ..PolicyConfig::default()
            })
            .unwrap_or_else(|e| panic!("{e}"));
            let ctx = RouteContext {
                session_key: Some("user-1234"),
                block_hashes: &[],
                want: 3,
                ..RouteContext::default()
            };
            group.bench_with_input(BenchmarkId::new(name.as_str(), n), &n, |b, _| {
                b.iter(|| black_box(policy.rank(black_box(&ctx), black_box(&refs))))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
