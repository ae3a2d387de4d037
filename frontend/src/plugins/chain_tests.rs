//! The chain's bookkeeping with real components: positions survive a filter, scorers add up
//! with their weights, a picker ranks the score order, failures follow the failure policy.
//! Uses the test plugins in plugins/target/wasm (built by scripts/build-plugins.sh rust).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use switchyard_plugin_host::{PluginKind, QuarantinePolicy, Request};
use switchyard_runtime::health::HealthConfig;
use switchyard_runtime::{Instance, InstanceSpec};

use super::*;
use crate::plugins::config::{parse_plugin_flag, FailurePolicy};
use crate::plugins::entry::PluginSource;

fn wasm(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../plugins/target/wasm/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; build it with scripts/build-plugins.sh rust"))
}

/// Plugins as (kind, component, name, weight, config, failure policy).
type Spec<'a> = (PluginKind, &'a str, &'a str, f64, &'a str, FailurePolicy);

async fn set_with(plugins: &[Spec<'_>]) -> PluginSet {
    let set = PluginSet::new(Default::default(), QuarantinePolicy::default(), None);
    for &(kind, component, name, weight, config, policy) in plugins {
        let mut cfg = parse_plugin_flag(&format!("{}=/x/{name}.wasm", kind.world())).unwrap();
        cfg.weight = weight;
        cfg.config = serde_json::Value::String(config.to_owned());
        cfg.failure_policy = policy;
        let entry = set
            .load_blocking(cfg, &wasm(component), PluginSource::Admin)
            .unwrap();
        set.install(entry).await;
    }
    set
}

fn instances(weights: &[f32]) -> Vec<Arc<Instance>> {
    weights
        .iter()
        .enumerate()
        .map(|(n, &w)| {
            let mut spec = InstanceSpec::new(format!("i{n}"), "m", format!("http://i{n}"));
            spec.weight = w;
            Arc::new(Instance::new(spec, None))
        })
        .collect()
}

fn request() -> Request {
    Request {
        model_index: 0,
        prompt_blocks: 1,
        prompt_tokens: 16,
        max_tokens: 8,
        session_hash: None,
        prefix_hash: 0,
        streaming: false,
        ..Request::default()
    }
}

/// Runs the chain; the native fallback ranks in reverse input order, so a fallback shows.
fn run(set: &PluginSet, all: &[Arc<Instance>]) -> Result<Vec<usize>, ApiError> {
    let routable: Vec<&Arc<Instance>> = all.iter().collect();
    let input = ChainInput {
        model: "m",
        request_id: "r1",
        tenant: None,
        request: request(),
        routable: &routable,
        want: routable.len(),
        explain: true,
        cached_prefix_blocks: Vec::new(),
        adapter: None,
    };
    chain_decide(set, &input)
}

fn chain_decide(set: &PluginSet, input: &ChainInput<'_>) -> Result<Vec<usize>, ApiError> {
    decide(set, &set.table(), input, |subset| {
        (0..subset.len()).rev().collect()
    })
}

const OPEN: FailurePolicy = FailurePolicy::FailOpen;
const CLOSED: FailurePolicy = FailurePolicy::FailClosed;

#[tokio::test]
async fn positions_survive_filter_scorer_and_picker() {
    // all-kinds: the filter keeps even positions, the scorer scores by position, the picker
    // reverses what it is given (the score order).
    let set = set_with(&[
        (PluginKind::Filter, "testing-all-kinds", "f", 1.0, "", OPEN),
        (PluginKind::Scorer, "testing-all-kinds", "s", 1.0, "", OPEN),
        (PluginKind::Picker, "testing-all-kinds", "p", 1.0, "", OPEN),
    ])
    .await;
    let all = instances(&[1.0; 5]);
    // Kept i0, i2, i4; scored 0, 1, 2 → order i4, i2, i0; reversed by the picker.
    assert_eq!(run(&set, &all).unwrap(), vec![0, 2, 4]);
    let explained = set.explains.get("r1").unwrap();
    assert_eq!(explained.pick, ["i0", "i2", "i4"]);
    let sha = explained.stages[0].sha256.clone().unwrap();
    assert!(explained
        .stages
        .iter()
        .all(|s| s.sha256.as_ref() == Some(&sha)));
}

#[tokio::test]
async fn without_a_picker_the_weighted_score_sum_ranks() {
    // Position scores 0..3 with weight 1, plus each instance's routing weight times 10.
    let set = set_with(&[
        (
            PluginKind::Scorer,
            "testing-all-kinds",
            "pos",
            1.0,
            "",
            OPEN,
        ),
        (
            PluginKind::Scorer,
            "testing-all-kinds",
            "w",
            10.0,
            "echo=weight",
            OPEN,
        ),
    ])
    .await;
    let all = instances(&[5.0, 1.0, 1.0, 1.0]);
    // Totals 50, 11, 12, 13.
    assert_eq!(run(&set, &all).unwrap(), vec![0, 3, 2, 1]);
    let totals = set
        .explains
        .get("r1")
        .unwrap()
        .total_scores
        .clone()
        .unwrap();
    assert_eq!(totals[0], ("i0".to_owned(), 50.0));
}

#[tokio::test]
async fn a_faulting_scorer_fails_open_to_the_native_policy() {
    let set = set_with(&[(
        PluginKind::Scorer,
        "testing-nan-scores",
        "nan",
        1.0,
        "",
        OPEN,
    )])
    .await;
    let all = instances(&[1.0; 3]);
    assert_eq!(
        run(&set, &all).unwrap(),
        vec![2, 1, 0],
        "the native fallback ranks"
    );
    let stage = &set.explains.get("r1").unwrap().stages[0];
    assert!(stage.fell_back && stage.error.is_some(), "{stage:?}");
}

#[tokio::test]
async fn a_faulting_scorer_fails_closed_with_plugin_failed() {
    let set = set_with(&[(
        PluginKind::Scorer,
        "testing-nan-scores",
        "nan",
        1.0,
        "",
        CLOSED,
    )])
    .await;
    let error = run(&set, &instances(&[1.0; 3])).unwrap_err();
    assert_eq!((error.status, error.code), (503, Some("plugin_failed")));
    assert!(error.message.contains("`nan`"), "{}", error.message);
}

#[tokio::test]
async fn candidates_carry_their_health() {
    let set = set_with(&[(
        PluginKind::Scorer,
        "testing-all-kinds",
        "h",
        1.0,
        "echo=health",
        OPEN,
    )])
    .await;
    let all = instances(&[1.0; 3]);
    all[1].health.mark_degraded(
        switchyard_runtime::clock::now_ns(),
        &HealthConfig::default(),
    );
    let _ = run(&set, &all).unwrap();
    let scores = set.explains.get("r1").unwrap().stages[0]
        .scores
        .clone()
        .unwrap();
    let health: Vec<f64> = scores.iter().map(|(_, s)| *s).collect();
    assert_eq!(health, [0.0, 1.0, 0.0], "healthy = 0, degraded = 1");
}

/// Waits (yielding to the spawned shadow tasks) until `done` holds; fails after 60 s (30
/// shadow calls took over 10 s when the test process was starved on a loaded 2-core run).
async fn until(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached"
        );
        tokio::task::yield_now().await;
    }
}

async fn shadowed_set(recorder: Option<super::super::record::Recorder>) -> PluginSet {
    let set = PluginSet::new(Default::default(), QuarantinePolicy::default(), recorder);
    for (name, mode) in [
        ("active", crate::plugins::PluginMode::Active),
        ("shadow", crate::plugins::PluginMode::Shadow),
    ] {
        let mut cfg = parse_plugin_flag(&format!("scorer=/x/{name}.wasm")).unwrap();
        cfg.mode = mode;
        let entry = set
            .load_blocking(cfg, &wasm("least-loaded"), PluginSource::Admin)
            .unwrap();
        set.install(entry).await;
    }
    set
}

#[tokio::test]
async fn an_identical_shadow_scorer_agrees_on_every_tie() {
    // An idle pool: least-loaded scores every instance 0, the chain rotates among the tie,
    // and the shadow's best-scored set holds every instance, so whatever was picked agrees.
    let set = shadowed_set(None).await;
    let all = instances(&[1.0; 3]);
    for _ in 0..30 {
        run(&set, &all).unwrap();
    }
    let shadow = set.table().get("shadow").map(Arc::clone).unwrap();
    let metrics = &shadow.metrics;
    let counted = || {
        metrics
            .shadow_agreements
            .load(std::sync::atomic::Ordering::Relaxed)
            + metrics
                .shadow_disagreements
                .load(std::sync::atomic::Ordering::Relaxed)
    };
    until(|| counted() == 30).await;
    assert_eq!(
        metrics
            .shadow_disagreements
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn shadow_decisions_go_to_the_decision_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let recorder = super::super::record::Recorder::open(path.to_str().unwrap()).unwrap();
    let set = shadowed_set(Some(recorder)).await;
    run(&set, &instances(&[1.0; 3])).unwrap();
    let records = || -> Vec<switchyard_plugin_host::DecisionRecord> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    until(|| records().iter().any(|r| r.shadow)).await;
    let shadow: Vec<_> = records().into_iter().filter(|r| r.shadow).collect();
    assert_eq!(shadow.len(), 1, "{shadow:?}");
    assert_eq!(shadow[0].plugin.as_deref(), Some("shadow"));
    assert_eq!(shadow[0].request_id.as_deref(), Some("r1"));
    assert!(matches!(
        shadow[0].output,
        Some(switchyard_plugin_host::DecisionOutput::Scores(ref s)) if s.len() == 3
    ));
}
