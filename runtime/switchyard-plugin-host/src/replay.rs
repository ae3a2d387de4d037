//! `switchyard plugin replay`: feeds a recorded decision trace to a plugin and reports its
//! answers next to the recorded ones.
//!
//! Deterministic by construction: a private host with a fixed `host.random` seed, no pooling
//! and one instance used sequentially (so plugin state evolves exactly as in a single
//! process), and `host.monotonic-now` returning each record's `atNs`.

use std::io::BufRead;

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
    /// The decision kind.
    pub kind: PluginKind,
    /// What the plugin answered now.
    pub output: DecisionOutput,
    /// What the trace says was decided, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<DecisionOutput>,
    /// Whether `output` agrees with `recorded` (see [`DecisionOutput::agrees_with`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agrees: Option<bool>,
}

/// Outcome of a replay.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Every decision replayed, in trace order.
    pub decisions: Vec<ReplayDecision>,
    /// Topology records delivered.
    pub topologies: usize,
    /// Decision records skipped because the plugin does not implement their kind.
    pub skipped: usize,
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
    let (kind, answer) = match &record.input {
        DecisionInput::Topology { topology } => {
            plugin
                .on_topology(topology.clone())
                .map_err(|e| Error::Trace {
                    line,
                    message: format!("the plugin failed on this topology: {e}"),
                })?;
            report.topologies += 1;
            return Ok(());
        }
        DecisionInput::Filter {
            request,
            candidates,
        } => (
            PluginKind::Filter,
            plugin
                .filter_at(request, candidates, now)
                .map(DecisionOutput::Indices),
        ),
        DecisionInput::Scorer {
            request,
            candidates,
        } => (
            PluginKind::Scorer,
            plugin
                .score_at(request, candidates, now)
                .map(DecisionOutput::Scores),
        ),
        DecisionInput::Picker {
            request,
            candidates,
        } => (
            PluginKind::Picker,
            plugin
                .pick_at(request, candidates, now)
                .map(DecisionOutput::Indices),
        ),
        DecisionInput::HealthPolicy { observations } => (
            PluginKind::HealthPolicy,
            plugin
                .assess_at(observations, now)
                .map(DecisionOutput::Verdicts),
        ),
    };
    if !plugin.implements(kind) {
        report.skipped += 1;
        return Ok(());
    }
    let output = answer.unwrap_or_else(|e| {
        report.errors += 1;
        DecisionOutput::Error(e.to_string())
    });
    let agrees = record
        .output
        .as_ref()
        .map(|recorded| output.agrees_with(recorded, kind == PluginKind::Filter));
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
        output,
        recorded: record.output,
        agrees,
    });
    Ok(())
}
