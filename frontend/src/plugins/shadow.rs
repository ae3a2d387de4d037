//! Shadow runs: a plugin with `mode: Shadow` decides on the same candidates as the active
//! chain, off the request path, and its answer is compared with the active pick.
//!
//! Agreement means "this plugin, in place, could have routed the request the same way":
//! - a shadow **scorer** agrees when the active pick is among its best-scored candidates. The
//!   chain orders equal totals from a rotating start, so a tie is not a disagreement (an
//!   identical scorer as its own shadow agrees on every decision, idle pool or not);
//! - a shadow **picker** agrees when its first choice is the active pick;
//! - a shadow **filter** agrees when it keeps the active pick.
//!
//! Scorers and pickers see the candidates the active filters kept (as they would in the
//! chain); filters see every routable candidate. Every shadow decision goes to the decision
//! record (`--record-decisions`) marked `"shadow": true`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use switchyard_plugin_host::{best_scored, Candidate, DecisionOutput, PluginKind, Request};

use super::entry::{PluginEntry, PluginFailure};
use super::record::Recorder;

/// What a shadow run needs, owned so it can move to a spawned task.
pub struct ShadowRun {
    pub entry: Arc<PluginEntry>,
    pub request_id: String,
    pub request: Request,
    pub candidates: Vec<Candidate>,
    /// Instance id the active chain picked (it is in `candidates`).
    pub active_pick: u32,
    pub recorder: Option<Recorder>,
}

impl ShadowRun {
    /// Calls the plugin, records its decision and counts the agreement.
    pub fn run(self) {
        let entry = &self.entry;
        let kind = entry.config.kind;
        let output: Result<DecisionOutput, PluginFailure> = match kind {
            PluginKind::Picker => entry
                .call(|p| p.pick(&self.request, &self.candidates))
                .map(DecisionOutput::Indices),
            PluginKind::Scorer => entry
                .call(|p| p.score(&self.request, &self.candidates))
                .map(DecisionOutput::Scores),
            PluginKind::Filter => entry
                .call(|p| p.filter(&self.request, &self.candidates))
                .map(DecisionOutput::Indices),
            PluginKind::HealthPolicy | PluginKind::Router => return,
        };
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                tracing::debug!(plugin = entry.name(), %error, "shadow plugin failed");
                if let Some(recorder) = &self.recorder {
                    recorder.shadow_decision(
                        &self.request_id,
                        entry.name(),
                        kind,
                        &self.request,
                        &self.candidates,
                        DecisionOutput::Error(error.to_string()),
                    );
                }
                return;
            }
        };
        let counter = if agrees(kind, &output, &self.candidates, self.active_pick) {
            &entry.metrics.shadow_agreements
        } else {
            &entry.metrics.shadow_disagreements
        };
        counter.fetch_add(1, Relaxed);
        if let Some(recorder) = &self.recorder {
            recorder.shadow_decision(
                &self.request_id,
                entry.name(),
                kind,
                &self.request,
                &self.candidates,
                output,
            );
        }
    }
}

/// Whether a shadow plugin's `output` on `candidates` could have routed to `active_pick`
/// (an instance id). Positions out of range never agree (the host validates them anyway).
pub fn agrees(
    kind: PluginKind,
    output: &DecisionOutput,
    candidates: &[Candidate],
    active_pick: u32,
) -> bool {
    let is_pick = |position: &usize| candidates.get(*position).map(|c| c.id) == Some(active_pick);
    match (kind, output) {
        (PluginKind::Picker, DecisionOutput::Indices(ranked)) => {
            ranked.first().is_some_and(is_pick)
        }
        (PluginKind::Filter, DecisionOutput::Indices(kept)) => kept.iter().any(is_pick),
        (PluginKind::Scorer, DecisionOutput::Scores(scores)) => {
            best_scored(scores).iter().any(is_pick)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin_host::sample_candidates;

    #[test]
    fn a_scorer_agrees_when_the_pick_is_among_its_best() {
        let c = sample_candidates(3); // ids 0, 1, 2
        let tie = DecisionOutput::Scores(vec![0.0, 0.0, 0.0]);
        for pick in 0..3 {
            assert!(agrees(PluginKind::Scorer, &tie, &c, pick), "pick {pick}");
        }
        let clear = DecisionOutput::Scores(vec![1.0, 3.0, 3.0]);
        assert!(!agrees(PluginKind::Scorer, &clear, &c, 0));
        assert!(agrees(PluginKind::Scorer, &clear, &c, 2));
    }

    #[test]
    fn pickers_and_filters_compare_with_the_pick() {
        let c = sample_candidates(3);
        let ranked = DecisionOutput::Indices(vec![2, 0]);
        assert!(agrees(PluginKind::Picker, &ranked, &c, 2));
        assert!(!agrees(PluginKind::Picker, &ranked, &c, 0));
        assert!(agrees(PluginKind::Filter, &ranked, &c, 0));
        assert!(!agrees(PluginKind::Filter, &ranked, &c, 1));
        assert!(!agrees(
            PluginKind::Filter,
            &DecisionOutput::Indices(vec![7]),
            &c,
            7
        ));
    }
}
