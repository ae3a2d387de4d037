//! WIT 0.2.0 plugins: detected as 0.2.0, every frame column and request field reaches the
//! guest intact, and a 0.1.0 component still loads next to them and decides the same.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns may unwrap too.

mod common;

use common::{host, load, request, wasm};
use switchyard_plugin_host::{
    detect_kinds, sample_candidates, Candidate, Health, Observation, ObservationKind, PluginKind,
    Priority, Request, Stage, WitVersion,
};

/// 70 candidates whose every field differs per position (and from every other field).
fn distinct_candidates() -> Vec<Candidate> {
    (0..70u32)
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
            running: 7 * i + 4,
            adapter_resident: i % 4 == 1,
        })
        .collect()
}

#[test]
fn a_0_2_plugin_is_detected_as_0_2_with_every_kind() {
    let all = vec![
        PluginKind::Filter,
        PluginKind::Scorer,
        PluginKind::Picker,
        PluginKind::HealthPolicy,
        PluginKind::Router,
    ];
    assert_eq!(detect_kinds(&wasm("testing-frame-echo")).unwrap(), all);
    let plugin = load(&host(), "testing-frame-echo", "{}");
    assert_eq!(plugin.wit_version(), WitVersion::V0_2);
    assert_eq!(plugin.kinds(), &all[..]);
    let v01 = load(&host(), "testing-all-kinds", "{}");
    assert_eq!(v01.wit_version(), WitVersion::V0_1);
}

#[test]
fn every_frame_column_reaches_a_0_2_plugin_intact() {
    let candidates = distinct_candidates();
    type Column = (&'static str, fn(&Candidate) -> f64);
    let columns: [Column; 11] = [
        ("id", |c| f64::from(c.id)),
        ("in-flight", |c| f64::from(c.in_flight)),
        ("running", |c| f64::from(c.running)),
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
        ("adapter-resident", |c| {
            f64::from(u8::from(c.adapter_resident))
        }),
    ];
    for (name, expected) in columns {
        let plugin = load(&host(), "testing-frame-echo", &format!("echo={name}"));
        // Shrinking after a longer call too: the host reuses the frame's columns.
        for n in [1, 8, 70, 3] {
            let got = plugin.score(&request(1), &candidates[..n]).unwrap();
            let want: Vec<f64> = candidates[..n].iter().map(expected).collect();
            assert_eq!(got, want, "column {name} with {n} candidates");
        }
    }
}

#[test]
fn every_request_field_reaches_a_0_2_plugin_intact() {
    let req = Request {
        model_index: 3,
        prompt_blocks: 11,
        prompt_tokens: 176,
        max_tokens: 64,
        session_hash: Some(99),
        prefix_hash: 12345,
        streaming: true,
        stage: Stage::Decode,
        priority: Priority::High,
        tenant_weight: 5,
        deadline_ms: 2500,
    };
    let fields: [(&str, f64); 11] = [
        ("model-index", 3.0),
        ("prompt-blocks", 11.0),
        ("prompt-tokens", 176.0),
        ("max-tokens", 64.0),
        ("session-hash", 99.0),
        ("prefix-hash", 12345.0),
        ("streaming", 1.0),
        ("stage", 2.0),
        ("priority", 2.0),
        ("tenant-weight", 5.0),
        ("deadline-ms", 2500.0),
    ];
    let two = &sample_candidates(2);
    for (name, want) in fields {
        let plugin = load(
            &host(),
            "testing-frame-echo",
            &format!("echo=request.{name}"),
        );
        assert_eq!(plugin.score(&req, two).unwrap(), [want; 2], "{name}");
    }
    let plugin = load(&host(), "testing-frame-echo", "echo=request.session-hash");
    let none = Request {
        session_hash: None,
        ..req
    };
    assert_eq!(plugin.score(&none, two).unwrap(), [-1.0; 2]);
    let plugin = load(&host(), "testing-frame-echo", "echo=request.stage");
    let prefill = Request {
        stage: Stage::Prefill,
        ..req
    };
    assert_eq!(plugin.score(&prefill, two).unwrap(), [1.0; 2]);
}

#[test]
fn a_0_2_plugin_filters_picks_and_assesses() {
    let plugin = load(&host(), "testing-frame-echo", "{}");
    let five = sample_candidates(5);
    assert_eq!(plugin.filter(&request(1), &five).unwrap(), vec![0, 2, 4]);
    assert_eq!(
        plugin.pick(&request(1), &five).unwrap(),
        vec![4, 3, 2, 1, 0]
    );
    let observations = [
        Observation {
            id: 1,
            kind: ObservationKind::ProbeOk,
            latency_ms: 1.0,
            at_ns: 1,
        },
        Observation {
            id: 1,
            kind: ObservationKind::RequestFailed,
            latency_ms: 1.0,
            at_ns: 2,
        },
    ];
    let verdicts = plugin.assess(&observations).unwrap();
    assert_eq!(verdicts.len(), 1);
    assert!(!verdicts[0].healthy && verdicts[0].id == 1);
}

/// The shipped `least-loaded` is built against 0.2.0; its 0.1.0 build must still load (in
/// the same host) and score exactly the same, at every bench size.
#[test]
fn a_0_1_plugin_still_loads_and_scores_like_its_0_2_twin() {
    let host = host();
    let config = r#"{"in_flight_weight": 2.0, "queued_weight": 0.5, "kv_usage_weight": 8.0}"#;
    let v02 = load(&host, "least-loaded", config);
    let v01 = load(&host, "testing-least-loaded-v01", config);
    assert_eq!(v02.wit_version(), WitVersion::V0_2);
    assert_eq!(v01.wit_version(), WitVersion::V0_1);
    assert_eq!(v01.kinds(), v02.kinds());
    for n in [0, 1, 8, 64, 512] {
        let candidates = sample_candidates(n);
        let a = v02.score(&request(4), &candidates).unwrap();
        let b = v01.score(&request(4), &candidates).unwrap();
        assert_eq!(a, b, "{n} candidates");
        assert_eq!(a.len(), n);
    }
    // And a config both refuse the same way.
    let refused = host.load(
        "v01",
        &wasm("testing-least-loaded-v01"),
        common::relaxed_limits(),
        r#"{"queued_weight": -1}"#,
    );
    assert!(refused.is_err());
    let refused = host.load(
        "v02",
        &wasm("least-loaded"),
        common::relaxed_limits(),
        r#"{"queued_weight": -1}"#,
    );
    assert!(refused.is_err());
}
