//! The frontend's `kubernetes:` config section: how namespaces share one cluster.

use serde::{Deserialize, Serialize};

use crate::ownership::ModelOwners;

/// `kubernetes:` in the frontend's YAML (the chart renders it from `modelOwners`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// `model: namespace`: the namespace whose WorkerPools serve each listed model; pools of
    /// that model in any other namespace are not routed. Models not listed belong to the
    /// namespace that created the first pool naming them.
    pub model_owners: ModelOwners,
    /// Let a RouterPlugin apply to models of other namespaces' pools (`appliesTo.models`, or
    /// every model when `appliesTo` is empty). Off: a plugin applies only to models served
    /// by WorkerPools of its own namespace.
    pub cross_namespace_plugins: bool,
}
