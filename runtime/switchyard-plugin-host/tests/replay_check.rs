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
        shadow: false,
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
            shadow: false,
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
    // A picker plugin's decisions cannot be replayed by a scorer: skipped with a reason.
    let skipped = replay(&ll, "{}", Cursor::new(trace(4, "picker"))).unwrap();
    assert_eq!((skipped.skipped, skipped.decisions.len()), (4, 0));
    assert_eq!(skipped.skips.len(), 4);
    assert!(
        skipped.skips[0]
            .reason
            .contains("picker decision by the plugin"),
        "{:?}",
        skipped.skips[0]
    );
    // A malformed line is an error that names the line.
    let broken = replay(&ll, "{}", Cursor::new("{\"atNs\":1,\"kind\":\"nope\"}\n"));
    assert!(matches!(
        broken,
        Err(switchyard_plugin_host::Error::Trace { line: 1, .. })
    ));
}

/// A native trace: picker records from `native:round-robin` whose recorded pick is
/// `pick(i)` (a position) for decision `i`.
fn native_trace(decisions: usize, pick: impl Fn(usize) -> usize) -> String {
    let t = trace(decisions, "picker");
    t.lines()
        .map(|l| {
            let mut r: DecisionRecord = serde_json::from_str(l).unwrap();
            if let DecisionInput::Picker { candidates, .. } = &r.input {
                let first = pick(r.line_index());
                let mut ranked: Vec<usize> = vec![first];
                ranked.extend((0..candidates.len()).filter(|&p| p != first));
                r.output = Some(DecisionOutput::Indices(ranked));
                r.plugin = Some("native:round-robin".into());
            }
            serde_json::to_string(&r).unwrap() + "\n"
        })
        .collect()
}

trait LineIndex {
    fn line_index(&self) -> usize;
}

impl LineIndex for DecisionRecord {
    /// Decision `i` of [`trace`] has request id `req-i`.
    fn line_index(&self) -> usize {
        self.request_id
            .as_deref()
            .and_then(|r| r.strip_prefix("req-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

#[test]
fn a_scorer_replays_against_native_decisions_in_place() {
    let ll = wasm("least-loaded");
    // First learn what the scorer would pick, then record exactly that natively.
    let probe = replay(&ll, "{}", Cursor::new(native_trace(10, |_| 0))).unwrap();
    assert_eq!((probe.decisions.len(), probe.skipped), (10, 0), "{probe:?}");
    let best: Vec<u32> = probe
        .decisions
        .iter()
        .map(|d| d.would_pick.as_ref().unwrap()[0])
        .collect();
    // Candidate ids equal positions in the sample candidates.
    let agreeing = native_trace(10, |i| best[i] as usize);
    let report = replay(&ll, "{}", Cursor::new(agreeing)).unwrap();
    assert_eq!(
        (report.compared, report.disagreements),
        (10, 0),
        "{report:?}"
    );
    assert!(report
        .decisions
        .iter()
        .all(|d| d.kind == PluginKind::Scorer && d.recorded_kind == PluginKind::Picker));
    // Recording a pick the scorer does not rank best is a disagreement.
    let differing = native_trace(10, |i| {
        let n = 3 + i % 5;
        (0..n)
            .find(|p| {
                !probe.decisions[i]
                    .would_pick
                    .as_ref()
                    .unwrap()
                    .contains(&(*p as u32))
            })
            .unwrap_or(0)
    });
    let report = replay(&ll, "{}", Cursor::new(differing)).unwrap();
    assert!(report.disagreements > 0, "{report:?}");
}

#[test]
fn a_filter_replays_against_native_decisions_in_place() {
    // label-selector keeps zone z0: sample topology ids 0, 3, 6 (zone = id % 3).
    let filter = wasm("label-selector");
    let config = r#"{"match":{"zone":"z0"}}"#;
    let keeps_pick = replay(&filter, config, Cursor::new(native_trace(5, |_| 0))).unwrap();
    assert_eq!(
        (keeps_pick.compared, keeps_pick.disagreements),
        (5, 0),
        "{keeps_pick:?}"
    );
    assert!(keeps_pick
        .decisions
        .iter()
        .all(|d| d.would_pick.as_deref() == Some(&[0][..])));
    let drops_pick = replay(&filter, config, Cursor::new(native_trace(5, |_| 1))).unwrap();
    assert_eq!(
        (drops_pick.compared, drops_pick.disagreements),
        (5, 5),
        "{drops_pick:?}"
    );
    // The filter in place: the native ranking's first kept entry (position 0, ranked second).
    assert!(drops_pick
        .decisions
        .iter()
        .all(|d| d.would_pick.as_deref() == Some(&[0][..])));
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
