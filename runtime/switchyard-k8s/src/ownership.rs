//! Model ownership across namespaces: a model name belongs to one namespace, so a WorkerPool
//! in another namespace that names the same model can never receive that model's prompts.
//!
//! Instances are found by model name, so without this rule any tenant able to create a
//! WorkerPool could claim another tenant's model and be sent its traffic. The owner is the
//! namespace named for the model in the explicit allow-list (`kubernetes.model_owners` in the
//! frontend, `--model-owner` in the operator, both set from the chart's `modelOwners`); for
//! a model not listed, the namespace of the pool that claimed it first (oldest
//! `creationTimestamp`, ties broken by namespace name). Both the operator (which marks the
//! losing pools with a `Conflict` condition) and the frontend (which does not route to them)
//! apply the same function, so they agree without talking to each other.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

/// Explicit owners: model name → namespace.
pub type ModelOwners = BTreeMap<String, String>;

/// One pool's claim on a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<'a> {
    pub namespace: &'a str,
    pub model: &'a str,
    /// `metadata.creationTimestamp`; a pool without one (not yet stored by the API server)
    /// sorts after every pool that has one, so it never displaces an existing owner.
    pub created: Option<Timestamp>,
}

/// The owning namespace of every claimed model.
pub fn owners<'a>(
    claims: impl IntoIterator<Item = Claim<'a>>,
    explicit: &ModelOwners,
) -> BTreeMap<String, String> {
    // (created is None, created, namespace): the smallest key claimed first.
    type Rank<'a> = (bool, Option<Timestamp>, &'a str);
    let mut first: BTreeMap<&str, Rank<'_>> = BTreeMap::new();
    for claim in claims {
        let rank = (claim.created.is_none(), claim.created, claim.namespace);
        first
            .entry(claim.model)
            .and_modify(|best| {
                if rank < *best {
                    *best = rank;
                }
            })
            .or_insert(rank);
    }
    first
        .into_iter()
        .map(|(model, (_, _, namespace))| {
            let owner = explicit.get(model).map(String::as_str).unwrap_or(namespace);
            (model.to_string(), owner.to_string())
        })
        .collect()
}

/// Whether a pool in `namespace` serving `model` may be routed to, given `owners`. A model
/// missing from `owners` has no competing claim yet, unless it is explicitly owned elsewhere.
pub fn owns(
    owners: &BTreeMap<String, String>,
    explicit: &ModelOwners,
    namespace: &str,
    model: &str,
) -> bool {
    match owners.get(model).or_else(|| explicit.get(model)) {
        Some(owner) => owner == namespace,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(namespace: &'a str, model: &'a str, secs: Option<i64>) -> Claim<'a> {
        Claim {
            namespace,
            model,
            created: secs.map(|s| Timestamp::from_second(s).expect("timestamp")),
        }
    }

    #[test]
    fn the_oldest_claim_owns_the_model() {
        let got = owners(
            [claim("b", "m", Some(20)), claim("a", "m", Some(30))],
            &ModelOwners::new(),
        );
        assert_eq!(got["m"], "b");
    }

    #[test]
    fn equal_timestamps_go_to_the_first_namespace_by_name() {
        let got = owners(
            [claim("zeta", "m", Some(5)), claim("alpha", "m", Some(5))],
            &ModelOwners::new(),
        );
        assert_eq!(got["m"], "alpha");
    }

    #[test]
    fn a_claim_without_a_timestamp_never_displaces_a_stored_one() {
        let got = owners(
            [claim("a", "m", None), claim("b", "m", Some(99))],
            &ModelOwners::new(),
        );
        assert_eq!(got["m"], "b");
    }

    #[test]
    fn the_allow_list_overrides_claim_order() {
        let explicit = ModelOwners::from([("m".to_string(), "b".to_string())]);
        let got = owners(
            [claim("a", "m", Some(1)), claim("b", "m", Some(2))],
            &explicit,
        );
        assert_eq!(got["m"], "b");
        assert!(!owns(&got, &explicit, "a", "m"));
        assert!(owns(&got, &explicit, "b", "m"));
    }

    #[test]
    fn an_allow_listed_model_is_refused_to_every_other_namespace() {
        let explicit = ModelOwners::from([("m".to_string(), "owner".to_string())]);
        let got = owners([claim("intruder", "m", Some(1))], &explicit);
        assert!(!owns(&got, &explicit, "intruder", "m"));
        assert!(!owns(&BTreeMap::new(), &explicit, "intruder", "m"));
    }
}
