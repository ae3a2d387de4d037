//! `switchyard plugin replay`: feeds a recorded decision trace to a plugin and reports its
//! answers next to the recorded ones.
//!
//! A record of the plugin's own kind is replayed as is. A **native** routing decision (a
//! `picker` record from `native:<policy>`) is also replayed against scorers and filters: the
//! question is what the native chain with this plugin in place would have picked (see
//! [`crate::replay_in_place`]). Every other record is skipped with a reason.
//!
//! Deterministic by construction: a private host with a fixed `host.random` seed, no pooling
//! and one instance used sequentially (so plugin state evolves exactly as in a single
//! process), and `host.monotonic-now` returning each record's `atNs`.

use std::io::BufRead;

use crate::replay_in_place::{in_place, InPlace};
use crate::{
    DecisionInput, DecisionOutput, DecisionRecord, Error, HostConfig, LoadedPlugin, PluginHost,
    PluginKind, PluginLimits, Result,
};

/// Seed of `host.random` during replay.
const REPLAY_SEED: u64 = 0x5357_4954_4348_5944; // "SWITCHYD"

/// One replayed decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayDecision {
    /// 1-based line in the trace.
    pub line: usize,
    /// The record's request id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What the plugin was asked (its own kind).
    pub kind: PluginKind,
    /// Who made the recorded decision (`native:<policy>` or a plugin name), if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    /// The recorded decision's kind (differs from `kind` when a scorer or filter is
    /// replayed against a native decision).
    pub recorded_kind: PluginKind,
    /// What the plugin answered now.
    pub output: DecisionOutput,
    /// What the trace says was decided, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<DecisionOutput>,
    /// Instance ids the chain with this plugin in place could have picked (ties included);
    /// only for replays against a native decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_pick: Option<Vec<u32>>,
    /// Whether `output` agrees with `recorded` (see [`DecisionOutput::agrees_with`]; for a
    /// replay in place: whether the recorded pick is one the chain could have made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agrees: Option<bool>,
}

/// A record that was not replayed, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedDecision {
    /// 1-based line in the trace.
    pub line: usize,
    /// The record's request id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Why, in plain words.
    pub reason: String,
}

/// Outcome of a replay.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Every decision replayed, in trace order.
    pub decisions: Vec<ReplayDecision>,
    /// Topology records delivered.
    pub topologies: usize,
    /// How many decision records were skipped (`skips` says why).
    pub skipped: usize,
    /// Every skipped decision record with its reason.
    pub skips: Vec<SkippedDecision>,
    /// Decisions that had a recorded output to compare with.
    pub compared: usize,
    /// Of those, how many disagree.
    pub disagreements: usize,
    /// Decisions where the plugin failed (trap, timeout, invalid output ...).
    pub errors: usize,
}

/// Replays the JSONL trace in `trace` through the component `bytes`, configured with
/// `config_json`. Fails only on unreadable input (bad component, unparsable line); plugin
/// faults during replay are reported per decision as [`DecisionOutput::Error`].
pub fn replay(bytes: &[u8], config_json: &str, trace: impl BufRead) -> Result<ReplayReport> {
    let host = PluginHost::new(HostConfig {
        pooling: false,
        rng_seed: Some(REPLAY_SEED),
        ..HostConfig::default()
    })?;
    // Replay is about choices, not speed: a generous budget keeps a busy machine from turning
    // a slow call into a spurious timeout (which would make the replay non-deterministic).
    let limits = PluginLimits {
        max_idle_instances: 1,
        decision_budget: std::time::Duration::from_secs(1),
        memory_bytes: 256 << 20,
        ..PluginLimits::default()
    };
    let plugin = host.load("replay", bytes, limits, config_json)?;
    let mut report = ReplayReport::default();
    for (index, line) in trace.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|e| Error::Trace {
            line: line_no,
            message: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let record: DecisionRecord = serde_json::from_str(&line).map_err(|e| Error::Trace {
            line: line_no,
            message: e.to_string(),
        })?;
        replay_one(&plugin, line_no, record, &mut report)?;
    }
    Ok(report)
}

fn replay_one(
    plugin: &LoadedPlugin,
    line: usize,
    record: DecisionRecord,
    report: &mut ReplayReport,
) -> Result<()> {
    let now = Some(record.at_ns);
    let Some(recorded_kind) = kind_of(&record.input) else {
        if let DecisionInput::Topology { topology } = &record.input {
            plugin
                .on_topology(topology.clone())
                .map_err(|e| Error::Trace {
                    line,
                    message: format!("the plugin failed on this topology: {e}"),
                })?;
            report.topologies += 1;
        }
        return Ok(());
    };
    if plugin.implements(recorded_kind) {
        let answer = match &record.input {
            DecisionInput::Filter {
                request,
                candidates,
            } => plugin
                .filter_at(request, candidates, now)
                .map(DecisionOutput::Indices),
            DecisionInput::Scorer {
                request,
                candidates,
            } => plugin
                .score_at(request, candidates, now)
                .map(DecisionOutput::Scores),
            DecisionInput::Picker {
                request,
                candidates,
            } => plugin
                .pick_at(request, candidates, now)
                .map(DecisionOutput::Indices),
            DecisionInput::HealthPolicy { observations } => plugin
                .assess_at(observations, now)
                .map(DecisionOutput::Verdicts),
            DecisionInput::Topology { .. } => return Ok(()),
        };
        let output = answer.unwrap_or_else(|e| DecisionOutput::Error(e.to_string()));
        let agrees = record
            .output
            .as_ref()
            .map(|recorded| output.agrees_with(recorded, recorded_kind == PluginKind::Filter));
        push(report, line, record, recorded_kind, output, None, agrees);
        return Ok(());
    }
    match in_place(plugin, &record, now) {
        InPlace::Replayed {
            kind,
            output,
            would_pick,
            agrees,
        } => push(report, line, record, kind, output, would_pick, agrees),
        InPlace::Skip(reason) => {
            report.skipped += 1;
            report.skips.push(SkippedDecision {
                line,
                request_id: record.request_id,
                reason,
            });
        }
    }
    Ok(())
}

/// Adds one replayed decision to the report and its counters.
fn push(
    report: &mut ReplayReport,
    line: usize,
    record: DecisionRecord,
    kind: PluginKind,
    output: DecisionOutput,
    would_pick: Option<Vec<u32>>,
    agrees: Option<bool>,
) {
    if matches!(output, DecisionOutput::Error(_)) {
        report.errors += 1;
    }
    if let Some(agrees) = agrees {
        report.compared += 1;
        if !agrees {
            report.disagreements += 1;
        }
    }
    report.decisions.push(ReplayDecision {
        line,
        request_id: record.request_id,
        kind,
        against: record.plugin,
        recorded_kind: kind_of(&record.input).unwrap_or(kind),
        output,
        recorded: record.output,
        would_pick,
        agrees,
    });
}

/// The decision kind of a record; `None` for topology records.
fn kind_of(input: &DecisionInput) -> Option<PluginKind> {
    match input {
        DecisionInput::Topology { .. } => None,
        DecisionInput::Filter { .. } => Some(PluginKind::Filter),
        DecisionInput::Scorer { .. } => Some(PluginKind::Scorer),
        DecisionInput::Picker { .. } => Some(PluginKind::Picker),
        DecisionInput::HealthPolicy { .. } => Some(PluginKind::HealthPolicy),
    }
}
