//! Replaying a scorer or filter against a decision of another kind: what would the chain
//! that made the recorded decision have picked with this plugin in place?
//!
//! Only a **native** decision (a `picker` record from `native:<policy>`, which is how the
//! frontend records natively routed traffic) can be answered that way:
//!
//! - a **scorer** in place: without a picker the chain ranks by score, so it could have
//!   picked any of the best-scored candidates (equal scores rotate); it agrees when the
//!   recorded pick is one of them;
//! - a **filter** in place: the native policy then ranks the kept candidates; the pick is the
//!   first of the recorded ranking that the filter keeps (unknown when it keeps none of the
//!   recorded entries); it agrees when it keeps the recorded pick.
//!
//! Everything else is skipped with the reason: a picker plugin's decision (the scorer or
//! filter in place would feed that picker, which the replay does not have), a shadow's
//! decision (nothing was routed by it), a decision of another stage (a filter does not take a
//! scorer's place), a health-policy decision for a routing plugin.

use crate::{best_scored, DecisionInput, DecisionOutput, DecisionRecord, LoadedPlugin, PluginKind};

/// The outcome of trying one record in place.
pub(crate) enum InPlace {
    Replayed {
        /// The plugin's kind (what it was asked).
        kind: PluginKind,
        output: DecisionOutput,
        /// Instance ids the chain could have picked.
        would_pick: Option<Vec<u32>>,
        agrees: Option<bool>,
    },
    Skip(String),
}

/// Prefix of the `plugin` field of natively routed decisions.
const NATIVE: &str = "native:";

/// `record` is of a kind `plugin` does not implement; see the module docs.
pub(crate) fn in_place(
    plugin: &LoadedPlugin,
    record: &DecisionRecord,
    now: Option<u64>,
) -> InPlace {
    let kind = [PluginKind::Scorer, PluginKind::Filter, PluginKind::Picker]
        .into_iter()
        .find(|k| plugin.implements(*k));
    let by = record.plugin.as_deref().unwrap_or("an unnamed decider");
    let (
        Some(kind),
        DecisionInput::Picker {
            request,
            candidates,
        },
    ) = (kind, &record.input)
    else {
        return InPlace::Skip(match (kind, &record.input) {
            (None, _) => format!(
                "a {} decision, and the plugin makes routing decisions of no kind it can replay",
                kind_of(&record.input)
            ),
            (Some(kind), _) => format!(
                "a {} decision by `{by}`: a {kind} does not take a {}'s place in the chain",
                kind_of(&record.input),
                kind_of(&record.input)
            ),
        });
    };
    if record.shadow {
        return InPlace::Skip(format!(
            "a shadow decision by `{by}`: nothing was routed by it"
        ));
    }
    if !by.starts_with(NATIVE) {
        return InPlace::Skip(format!(
            "a picker decision by the plugin `{by}`: a {kind} in place would feed that picker, which this replay does not run"
        ));
    }
    let recorded_ranking = match &record.output {
        Some(DecisionOutput::Indices(ranked)) => Some(ranked.as_slice()),
        _ => None,
    };
    let id_at = |position: &usize| candidates.get(*position).map(|c| c.id);
    let recorded_pick = recorded_ranking.and_then(|r| r.first()).and_then(id_at);
    let (output, would_pick) = match kind {
        PluginKind::Scorer => match plugin.score_at(request, candidates, now) {
            Ok(scores) => {
                let best: Vec<u32> = best_scored(&scores).iter().filter_map(id_at).collect();
                (DecisionOutput::Scores(scores), Some(best))
            }
            Err(e) => (DecisionOutput::Error(e.to_string()), None),
        },
        PluginKind::Filter => match plugin.filter_at(request, candidates, now) {
            Ok(kept) => {
                let pick = recorded_ranking
                    .unwrap_or_default()
                    .iter()
                    .find(|p| kept.contains(p))
                    .and_then(id_at);
                (
                    DecisionOutput::Indices(kept),
                    Some(pick.into_iter().collect()),
                )
            }
            Err(e) => (DecisionOutput::Error(e.to_string()), None),
        },
        _ => return InPlace::Skip("unreachable: a picker replays picker records".into()),
    };
    let agrees = match (&would_pick, recorded_pick) {
        (Some(picks), Some(recorded)) => Some(picks.contains(&recorded)),
        (None, Some(_)) => Some(false),
        (_, None) => None,
    };
    InPlace::Replayed {
        kind,
        output,
        would_pick,
        agrees,
    }
}

fn kind_of(input: &DecisionInput) -> &'static str {
    match input {
        DecisionInput::Topology { .. } => "topology",
        DecisionInput::Filter { .. } => "filter",
        DecisionInput::Scorer { .. } => "scorer",
        DecisionInput::Picker { .. } => "picker",
        DecisionInput::HealthPolicy { .. } => "health-policy",
    }
}
