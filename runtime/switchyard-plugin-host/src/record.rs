//! The decision-record schema: one JSON object per line (JSONL). The frontend's
//! `--record-decisions FILE` writes exactly [`DecisionRecord`]s and `switchyard plugin replay`
//! reads them. Topology changes are records too, so a trace replays with the instance set
//! the decisions were made against.
//!
//! ```json
//! {"atNs":1000,"kind":"topology","topology":{"generation":1,"models":["m"],"instances":[...]}}
//! {"atNs":2000,"requestId":"r1","plugin":"least-loaded","kind":"scorer","request":{...},"candidates":[...],"output":{"scores":[-1.0,-3.0]}}
//! ```

use serde::{Deserialize, Serialize};

use crate::{Candidate, Observation, Request, Topology, Verdict};

/// Version of the record schema; bump on incompatible change.
pub const DECISION_RECORD_VERSION: u32 = 1;

/// One line of a decision trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// Schema version ([`DECISION_RECORD_VERSION`]); absent means 1.
    #[serde(default = "default_version")]
    pub v: u32,
    /// When the decision was made, on the host's monotonic clock (nanoseconds). Replay
    /// returns it from `host.monotonic-now`, so time-dependent plugins replay exactly.
    pub at_ns: u64,
    /// The frontend's `x-request-id`, when the record belongs to a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who decided: a plugin name or `native:<policy>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// A shadow plugin's decision: computed on the same candidates, never used for routing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// What was asked.
    #[serde(flatten)]
    pub input: DecisionInput,
    /// What was decided (absent for topology records and when not recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<DecisionOutput>,
}

fn default_version() -> u32 {
    DECISION_RECORD_VERSION
}

/// The input of one decision, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DecisionInput {
    /// The instance set changed; delivered through `on-topology`.
    Topology {
        /// The new instance set.
        topology: Topology,
    },
    /// A filter decision.
    Filter {
        /// The request.
        request: Request,
        /// The candidates, in the order the plugin saw them.
        candidates: Vec<Candidate>,
    },
    /// A scorer decision.
    Scorer {
        /// The request.
        request: Request,
        /// The candidates, in the order the plugin saw them.
        candidates: Vec<Candidate>,
    },
    /// A picker decision.
    Picker {
        /// The request.
        request: Request,
        /// The candidates, in the order the plugin saw them.
        candidates: Vec<Candidate>,
    },
    /// A health-policy decision.
    HealthPolicy {
        /// Observations since the previous health decision.
        observations: Vec<Observation>,
    },
}

/// The output of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DecisionOutput {
    /// Filter (kept positions) or picker (ranked positions).
    Indices(Vec<usize>),
    /// Scorer: one score per candidate.
    Scores(Vec<f64>),
    /// Health policy verdicts.
    Verdicts(Vec<Verdict>),
    /// The decision failed; the error's message.
    Error(String),
}

impl DecisionOutput {
    /// Whether two outputs agree on what matters for routing: the same kept set (filter),
    /// the same first choice (picker), the same best candidate (scorer), the same verdicts
    /// (health), the same error-ness.
    pub fn agrees_with(&self, other: &DecisionOutput, kind_is_filter: bool) -> bool {
        match (self, other) {
            (DecisionOutput::Indices(a), DecisionOutput::Indices(b)) if kind_is_filter => {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort_unstable();
                b.sort_unstable();
                a == b
            }
            (DecisionOutput::Indices(a), DecisionOutput::Indices(b)) => a.first() == b.first(),
            // The router orders equal totals from a rotating start, so any of the best-scored
            // candidates may have been routed to: two scorings agree when they share one.
            (DecisionOutput::Scores(a), DecisionOutput::Scores(b)) => {
                let b = best_scored(b);
                best_scored(a).iter().any(|i| b.contains(i))
            }
            (DecisionOutput::Verdicts(a), DecisionOutput::Verdicts(b)) => {
                let key = |v: &Verdict| (v.id, v.healthy);
                let (mut a, mut b): (Vec<_>, Vec<_>) =
                    (a.iter().map(key).collect(), b.iter().map(key).collect());
                a.sort_unstable();
                b.sort_unstable();
                a == b
            }
            (DecisionOutput::Error(_), DecisionOutput::Error(_)) => true,
            _ => false,
        }
    }
}

/// Positions of the highest score: every candidate the router could have picked from these
/// scores (it breaks ties by a rotating start). Scores within a relative 1e-9 of the best
/// count as equal, so the same arithmetic done in another order still ties. Non-finite
/// scores never win (the host refuses them before they reach the router).
pub fn best_scored(scores: &[f64]) -> Vec<usize> {
    let best = scores
        .iter()
        .copied()
        .filter(|s| s.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !best.is_finite() {
        return Vec::new();
    }
    let slack = 1e-9 * best.abs().max(1.0);
    scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_finite() && best - **s <= slack)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sample_candidates, sample_request, sample_topology};

    #[test]
    fn records_round_trip_through_json_lines() {
        let records = vec![
            DecisionRecord {
                v: 1,
                at_ns: 1,
                request_id: None,
                plugin: None,
                shadow: false,
                input: DecisionInput::Topology {
                    topology: sample_topology(2),
                },
                output: None,
            },
            DecisionRecord {
                v: 1,
                at_ns: 2,
                request_id: Some("r1".into()),
                plugin: Some("native:least-loaded".into()),
                shadow: true,
                input: DecisionInput::Scorer {
                    request: sample_request(),
                    candidates: sample_candidates(2),
                },
                output: Some(DecisionOutput::Scores(vec![1.0, 2.0])),
            },
        ];
        for record in records {
            let line = serde_json::to_string(&record).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(
                serde_json::from_str::<DecisionRecord>(&line).unwrap(),
                record
            );
        }
        let minimal = r#"{"atNs":5,"kind":"health-policy","observations":[]}"#;
        let parsed: DecisionRecord = serde_json::from_str(minimal).unwrap();
        assert_eq!(parsed.v, DECISION_RECORD_VERSION);
    }

    #[test]
    fn agreement_is_about_the_routing_outcome() {
        use DecisionOutput::*;
        assert!(Indices(vec![2, 0, 1]).agrees_with(&Indices(vec![2, 1]), false));
        assert!(!Indices(vec![2, 0]).agrees_with(&Indices(vec![0, 2]), false));
        assert!(Indices(vec![2, 0]).agrees_with(&Indices(vec![0, 2]), true));
        assert!(Scores(vec![1.0, 3.0]).agrees_with(&Scores(vec![0.0, 0.5]), false));
        assert!(!Scores(vec![1.0, 3.0]).agrees_with(&Error("x".into()), false));
        // Ties: either of two equal best scores may have been routed to.
        assert!(Scores(vec![0.0, 0.0, -1.0]).agrees_with(&Scores(vec![-2.0, 5.0, 1.0]), false));
        assert!(!Scores(vec![0.0, 0.0, 1.0]).agrees_with(&Scores(vec![0.0, 5.0, 1.0]), false));
    }

    #[test]
    fn best_scored_keeps_every_tie_and_ignores_non_finite() {
        assert_eq!(best_scored(&[1.0, 3.0, 3.0, 2.0]), [1, 2]);
        assert_eq!(best_scored(&[0.1 + 0.2, 0.3]), [0, 1]);
        assert_eq!(best_scored(&[f64::NAN, 1.0, f64::INFINITY]), [1]);
        assert!(best_scored(&[]).is_empty());
    }
}
