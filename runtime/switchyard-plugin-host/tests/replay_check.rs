//! Replay is deterministic and compares with recorded outputs; check and bench report on
//! real components.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns may unwrap too.

mod common;

use std::io::Cursor;

use common::wasm;
use switchyard_plugin_host::{
    bench, check, replay, sample_candidates, sample_request, sample_topology, DecisionInput,
    DecisionOutput, DecisionRecord, PluginKind, BENCH_SIZES,
};

fn trace(decisions: usize, kind: &str) -> String {
    let mut records = vec![DecisionRecord {
        v: 1,
        at_ns: 0,
        request_id: None,
        plugin: None,
        input: DecisionInput::Topology {
            topology: sample_topology(8),
        },
        output: None,
    }];
    for i in 0..decisions {
        let (request, candidates) = (sample_request(), sample_candidates(3 + i % 5));
        let input = match kind {
            "picker" => DecisionInput::Picker {
                request,
                candidates,
            },
            _ => DecisionInput::Scorer {
                request,
                candidates,
            },
        };
        records.push(DecisionRecord {
            v: 1,
            at_ns: 1_000 * i as u64,
            request_id: Some(format!("req-{i}")),
            plugin: None,
            input,
            output: None,
        });
    }
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

#[test]
fn replay_is_deterministic_for_a_stateful_plugin() {
    let rr = wasm("round-robin");
    let t = trace(40, "picker");
    let first = replay(&rr, "{}", Cursor::new(&t)).unwrap();
    let second = replay(&rr, "{}", Cursor::new(&t)).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        (first.topologies, first.decisions.len(), first.errors),
        (1, 40, 0)
    );
    // Round-robin's state shows: consecutive first choices rotate.
    let firsts: Vec<_> = first
        .decisions
        .iter()
        .take(3)
        .map(|d| d.output.clone())
        .collect();
    assert_ne!(firsts[0], firsts[1]);
}

/// A plugin that reads WASI's wall clock or random numbers replays identically: the host pins
/// every clock to the recorded time and seeds every random source.
#[test]
fn replay_pins_wasi_clocks_and_randomness() {
    let plugin = wasm("testing-blocking");
    let t = trace(40, "picker");
    for mode in ["clock", "random"] {
        let first = replay(&plugin, mode, Cursor::new(&t)).unwrap();
        let second = replay(&plugin, mode, Cursor::new(&t)).unwrap();
        assert_eq!(first.errors, 0, "{mode}: {first:?}");
        assert_eq!(first, second, "{mode}");
        // The plugin really does depend on the source: its rotations vary over the trace.
        let leaders: std::collections::HashSet<_> = first
            .decisions
            .iter()
            .filter_map(|d| match &d.output {
                DecisionOutput::Indices(ix) => ix.first().copied(),
                _ => None,
            })
            .collect();
        assert!(leaders.len() > 1, "{mode}: always the same first choice");
    }
}

#[test]
fn replay_compares_with_recorded_outputs_and_skips_other_kinds() {
    let ll = wasm("least-loaded");
    let t = trace(10, "scorer");
    let plain = replay(&ll, "{}", Cursor::new(&t)).unwrap();
    // Record what it decided, then flip one recorded answer: exactly one disagreement.
    let mut lines: Vec<DecisionRecord> = t
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (record, decided) in lines.iter_mut().skip(1).zip(&plain.decisions) {
        record.output = Some(decided.output.clone());
    }
    if let Some(DecisionOutput::Scores(s)) = lines[3].output.as_mut() {
        let last = s.len() - 1;
        s.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = if i == last { 1e9 } else { -1e9 });
    }
    let recorded: String = lines
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let report = replay(&ll, "{}", Cursor::new(recorded)).unwrap();
    assert_eq!((report.compared, report.disagreements), (10, 1));
    // A scorer cannot replay picker decisions: they are skipped, not failed.
    let skipped = replay(&ll, "{}", Cursor::new(trace(4, "picker"))).unwrap();
    assert_eq!((skipped.skipped, skipped.decisions.len()), (4, 0));
    // A malformed line is an error that names the line.
    let broken = replay(&ll, "{}", Cursor::new("{\"atNs\":1,\"kind\":\"nope\"}\n"));
    assert!(matches!(
        broken,
        Err(switchyard_plugin_host::Error::Trace { line: 1, .. })
    ));
}

#[test]
fn check_passes_good_plugins_and_explains_bad_ones() {
    let good = check(&wasm("least-loaded"), "{}", common::relaxed_limits());
    assert!(good.ok, "{good}");
    assert_eq!(good.kinds, vec![PluginKind::Scorer]);
    let nan = check(&wasm("testing-nan-scores"), "{}", common::relaxed_limits());
    assert!(!nan.ok);
    assert!(nan.to_string().contains("non-finite"), "{nan}");
    let garbage = check(b"nope", "{}", common::relaxed_limits());
    assert!(!garbage.ok && garbage.kinds.is_empty());
    assert!(
        garbage
            .to_string()
            .contains("not a loadable WebAssembly component"),
        "{garbage}"
    );
}

#[test]
fn bench_measures_every_size() {
    let report = bench(&wasm("round-robin"), "{}").unwrap();
    assert_eq!(report.points.len(), BENCH_SIZES.len());
    for point in &report.points {
        assert!(
            point.samples >= 20 && point.p50 > std::time::Duration::ZERO && point.p99 >= point.p50,
            "{point:?}"
        );
    }
    assert!(report.instantiate_p50 > std::time::Duration::ZERO);
    println!("{report}");
}
