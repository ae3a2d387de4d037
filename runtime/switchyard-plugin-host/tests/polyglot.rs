//! The Python (componentize-py) and JavaScript (componentize-js) plugins load and decide.
//! Each takes seconds to compile, so each is loaded once.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns may unwrap too.

mod common;

use common::{candidate, host, interpreted_limits, load_with, request};
use switchyard_plugin_host::{sample_topology, PluginKind};

#[test]
fn python_latency_aware_scorer_uses_topology_labels() {
    let config = r#"{"ttft_weight": 1.0, "itl_weight": 0.0, "preferred_label": "zone=z1", "preferred_bonus": 1000}"#;
    let plugin = load_with(&host(), "latency-aware", config, interpreted_limits());
    assert_eq!(plugin.kinds(), &[PluginKind::Scorer]);
    plugin.on_topology(sample_topology(3)).unwrap();
    let mut cands = [candidate(0, 0, 0), candidate(1, 0, 0), candidate(2, 0, 0)];
    cands[0].ttft_ewma_ms = 10.0;
    cands[1].ttft_ewma_ms = 50.0;
    cands[2].ttft_ewma_ms = 30.0;
    // Instance 1 is in zone z1 (sample_topology labels zones i % 3): preferred despite latency.
    assert_eq!(
        plugin.score(&request(2), &cands).unwrap(),
        vec![-10.0, 950.0, -30.0]
    );
}

#[test]
fn javascript_least_busy_picker_ranks_by_load() {
    let plugin = load_with(
        &host(),
        "least-busy",
        r#"{"queued_weight": 1}"#,
        interpreted_limits(),
    );
    assert_eq!(plugin.kinds(), &[PluginKind::Picker]);
    let cands = [candidate(0, 5, 0), candidate(1, 1, 0), candidate(2, 3, 0)];
    for _ in 0..3 {
        assert_eq!(plugin.pick(&request(2), &cands).unwrap(), vec![1, 2, 0]);
    }
}
