//! The Rust plugins in plugins/rust load, are detected as the right kind, and decide correctly.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns may unwrap too.

mod common;

use std::sync::Arc;

use common::{candidate, host, load, request, wasm};
use switchyard_plugin_host::{
    detect_kinds, sample_topology, Candidate, Error, Health, Observation, ObservationKind,
    PluginKind, Verdict,
};

#[test]
fn detect_kinds_reports_each_world() {
    assert_eq!(
        detect_kinds(&wasm("least-loaded")).unwrap(),
        vec![PluginKind::Scorer]
    );
    assert_eq!(
        detect_kinds(&wasm("prefix-affinity")).unwrap(),
        vec![PluginKind::Scorer]
    );
    assert_eq!(
        detect_kinds(&wasm("round-robin")).unwrap(),
        vec![PluginKind::Picker]
    );
    assert_eq!(
        detect_kinds(&wasm("consecutive-failures")).unwrap(),
        vec![PluginKind::HealthPolicy]
    );
    // The host's own detection (same engine as serving) agrees.
    assert_eq!(
        host().detect_kinds(&wasm("round-robin")).unwrap(),
        vec![PluginKind::Picker]
    );
}

#[test]
fn detect_kinds_refuses_what_is_not_a_component() {
    assert!(matches!(
        detect_kinds(b"definitely not wasm"),
        Err(Error::Compile(_))
    ));
    // A valid but empty core module is not a component either.
    assert!(matches!(
        detect_kinds(b"\0asm\x01\0\0\0"),
        Err(Error::Compile(_))
    ));
}

#[test]
fn least_loaded_scores_by_load_and_honours_config() {
    let host = host();
    let plugin = load(&host, "least-loaded", "{}");
    let cands = [candidate(0, 5, 0), candidate(1, 1, 0), candidate(2, 3, 0)];
    assert_eq!(
        plugin.score(&request(4), &cands).unwrap(),
        vec![-5.0, -1.0, -3.0]
    );

    let doubled = load(&host, "least-loaded", r#"{"in_flight_weight": 2.0}"#);
    assert_eq!(
        doubled.score(&request(4), &cands).unwrap(),
        vec![-10.0, -2.0, -6.0]
    );
    assert!(doubled.score(&request(4), &[]).unwrap().is_empty());

    let refused = host.load(
        "least-loaded",
        &wasm("least-loaded"),
        Default::default(),
        r#"{"bogus": 1}"#,
    );
    assert!(matches!(refused, Err(Error::ConfigRejected(m)) if m.contains("bogus")));
}

#[test]
fn prefix_affinity_prefers_cached_prefixes() {
    let plugin = load(&host(), "prefix-affinity", r#"{"load_weight": 0}"#);
    let cands = [candidate(0, 0, 8), candidate(1, 0, 0), candidate(2, 0, 4)];
    assert_eq!(
        plugin.score(&request(8), &cands).unwrap(),
        vec![1.0, 0.0, 0.5]
    );
}

#[test]
fn round_robin_rotates_and_puts_unhealthy_last() {
    let plugin = load(&host(), "round-robin", "{}");
    let cands = [candidate(0, 0, 0), candidate(1, 0, 0), candidate(2, 0, 0)];
    // Sequential calls reuse the one pooled instance, so its counter advances.
    assert_eq!(plugin.pick(&request(1), &cands).unwrap(), vec![0, 1, 2]);
    assert_eq!(plugin.pick(&request(1), &cands).unwrap(), vec![1, 2, 0]);
    assert_eq!(plugin.pick(&request(1), &cands).unwrap(), vec![2, 0, 1]);
    let mut sick = cands;
    sick[0].health = Health::Unhealthy;
    assert_eq!(plugin.pick(&request(1), &sick).unwrap(), vec![1, 2, 0]);
    assert_eq!(plugin.stats().instantiations, 1);
    // Asking a picker to score is a caller error, not a plugin fault.
    assert!(matches!(
        plugin.score(&request(1), &cands),
        Err(Error::KindNotImplemented(PluginKind::Scorer))
    ));
}

#[test]
fn consecutive_failures_flips_health_after_the_threshold() {
    let plugin = load(
        &host(),
        "consecutive-failures",
        r#"{"threshold": 3, "recovery": 1}"#,
    );
    plugin.on_topology(sample_topology(3)).unwrap();
    let obs = |id, kind| Observation {
        id,
        kind,
        latency_ms: 1.0,
        at_ns: 0,
    };
    let failures = [
        obs(1, ObservationKind::RequestFailed),
        obs(1, ObservationKind::ProbeTimeout),
        obs(2, ObservationKind::ProbeOk),
    ];
    let mut verdicts = plugin.assess(&failures).unwrap();
    verdicts.sort_by_key(|v| v.id);
    assert_eq!(
        verdicts,
        vec![
            Verdict {
                id: 1,
                healthy: true
            },
            Verdict {
                id: 2,
                healthy: true
            }
        ]
    );
    let verdicts = plugin
        .assess(&[obs(1, ObservationKind::ProbeFailed)])
        .unwrap();
    assert_eq!(
        verdicts,
        vec![Verdict {
            id: 1,
            healthy: false
        }]
    );
    let verdicts = plugin
        .assess(&[obs(1, ObservationKind::RequestOk)])
        .unwrap();
    assert_eq!(
        verdicts,
        vec![Verdict {
            id: 1,
            healthy: true
        }]
    );
    // A verdict about an instance outside the topology is refused by the host.
    let unknown = plugin.assess(&[obs(99, ObservationKind::ProbeOk)]);
    assert!(matches!(unknown, Err(Error::InvalidOutput(m)) if m.contains("99")));
}

#[test]
fn concurrent_callers_each_get_an_instance() {
    let plugin = Arc::new(load(&host(), "least-loaded", "{}"));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let plugin = Arc::clone(&plugin);
            std::thread::spawn(move || {
                let cands = [candidate(0, t, 0), candidate(1, t + 1, 0)];
                for _ in 0..500 {
                    assert_eq!(
                        plugin.score(&request(1), &cands).unwrap(),
                        vec![-f64::from(t), -f64::from(t + 1)]
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = plugin.stats();
    assert_eq!(stats.calls, 2000);
    assert_eq!(stats.faults, 0);
    assert!(
        stats.instantiations <= 4,
        "at most one instance per concurrent caller: {stats:?}"
    );
    assert!(plugin.idle_instances() <= 4);
}

#[test]
fn a_router_component_serves_every_kind() {
    let bytes = wasm("testing-all-kinds");
    let all = vec![
        PluginKind::Filter,
        PluginKind::Scorer,
        PluginKind::Picker,
        PluginKind::HealthPolicy,
        PluginKind::Router,
    ];
    assert_eq!(detect_kinds(&bytes).unwrap(), all);
    let plugin = load(&host(), "testing-all-kinds", "{}");
    assert!(plugin.implements(PluginKind::Router));
    let cands = [candidate(0, 0, 0), candidate(1, 0, 0), candidate(2, 0, 0)];
    assert_eq!(plugin.filter(&request(1), &cands).unwrap(), vec![0, 2]);
    assert_eq!(
        plugin.score(&request(1), &cands).unwrap(),
        vec![0.0, 1.0, 2.0]
    );
    assert_eq!(plugin.pick(&request(1), &cands).unwrap(), vec![2, 1, 0]);
    let obs = Observation {
        id: 4,
        kind: ObservationKind::ProbeFailed,
        latency_ms: 0.0,
        at_ns: 0,
    };
    assert_eq!(
        plugin.assess(&[obs]).unwrap(),
        vec![Verdict {
            id: 4,
            healthy: false
        }]
    );
}

/// The candidate list is lowered by hand (`candidate.rs`), not by wasmtime's derived code:
/// every field must reach the guest with its value, at every position, for several list sizes.
#[test]
fn every_candidate_field_reaches_the_guest_intact() {
    let candidates: Vec<Candidate> = (0..70u32)
        .map(|i| Candidate {
            id: 1000 + i,
            in_flight: 2 * i + 1,
            queued: 3 * i + 2,
            kv_usage: i as f32 / 128.0,
            cached_prefix_blocks: 5 * i + 3,
            ttft_ewma_ms: 10.5 + i as f32,
            itl_ewma_ms: 0.25 * i as f32,
            health: [Health::Healthy, Health::Degraded, Health::Unhealthy][i as usize % 3],
            weight: 1.0 - i as f32 / 100.0,
            running: 0,
            adapter_resident: false,
        })
        .collect();
    type Field = (&'static str, fn(&Candidate) -> f64);
    let fields: [Field; 9] = [
        ("id", |c| f64::from(c.id)),
        ("in-flight", |c| f64::from(c.in_flight)),
        ("queued", |c| f64::from(c.queued)),
        ("kv-usage", |c| f64::from(c.kv_usage)),
        ("cached-prefix-blocks", |c| {
            f64::from(c.cached_prefix_blocks)
        }),
        ("ttft-ewma-ms", |c| f64::from(c.ttft_ewma_ms)),
        ("itl-ewma-ms", |c| f64::from(c.itl_ewma_ms)),
        ("health", |c| match c.health {
            Health::Healthy => 0.0,
            Health::Degraded => 1.0,
            Health::Unhealthy => 2.0,
        }),
        ("weight", |c| f64::from(c.weight)),
    ];
    for (name, expected) in fields {
        let plugin = load(&host(), "testing-all-kinds", &format!("echo={name}"));
        for n in [1, 8, 70] {
            let got = plugin.score(&request(1), &candidates[..n]).unwrap();
            let want: Vec<f64> = candidates[..n].iter().map(expected).collect();
            assert_eq!(got, want, "field {name} with {n} candidates");
        }
    }
}
