//! Status conditions: names, and setting one while keeping its transition time stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// RouterPlugin: the spec is usable (source well-formed, kind known).
pub const ACCEPTED: &str = "Accepted";
/// RouterPlugin: bytes match the digest and the component implements the world `kind` names.
pub const VALIDATED: &str = "Validated";
/// WorkerPool: at least one worker is ready to serve.
pub const AVAILABLE: &str = "Available";
/// WorkerPool: a rollout or scale change is still in progress.
pub const PROGRESSING: &str = "Progressing";

/// A condition to set: type, status, machine reason and human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Builds the new condition list: `updates` replace conditions of the same type; the
/// `lastTransitionTime` is kept when the status did not change, so watchers see real
/// transitions only.
pub fn merge(
    existing: &[Condition],
    updates: Vec<ConditionUpdate>,
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing
        .iter()
        .filter(|c| !updates.iter().any(|u| u.type_ == c.type_))
        .cloned()
        .collect();
    for u in updates {
        let status = if u.status { "True" } else { "False" }.to_string();
        let last_transition_time = existing
            .iter()
            .find(|c| c.type_ == u.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        out.push(Condition {
            type_: u.type_.to_string(),
            status,
            reason: u.reason.to_string(),
            message: u.message,
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The status (`True`/`False`/`Unknown`) and reason of one condition, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_only_moves_on_status_change() {
        let first = merge(
            &[],
            vec![ConditionUpdate::new(VALIDATED, false, "Pending", "")],
            Some(1),
            t(10),
        );
        let same = merge(
            &first,
            vec![ConditionUpdate::new(VALIDATED, false, "Other", "x")],
            Some(2),
            t(20),
        );
        assert_eq!(same[0].last_transition_time, t(10));
        assert_eq!(same[0].reason, "Other");
        let flipped = merge(
            &same,
            vec![ConditionUpdate::new(VALIDATED, true, "Validated", "")],
            Some(3),
            t(30),
        );
        assert_eq!(flipped[0].last_transition_time, t(30));
        assert_eq!(flipped[0].observed_generation, Some(3));
    }
}
