//! How instance sets reach the frontend.
//!
//! Every discovery backend (static flags, etcd, Kubernetes) is a task that sends
//! [`DiscoveryEvent`]s into a channel; the frontend's instance registry applies them. A backend
//! that loses its source sends `State(Disconnected)` and *keeps quiet*: the registry then serves
//! the last known set (fail-static) until a fresh `Snapshot` arrives.

use crate::spec_check::Reason;
use crate::InstanceSpec;

/// A change to the instance set, as a discovery backend reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryEvent {
    /// The complete set from this source; replaces everything the source reported before.
    Snapshot(Vec<InstanceSpec>),
    /// An instance appeared or changed.
    Upsert(Box<InstanceSpec>),
    /// An instance is gone.
    Remove { id: String },
    /// An entry the backend could not turn into a spec (it has logged which): counted in
    /// `switchyard_discovery_rejected_total`, nothing else changes.
    Rejected(Reason),
    /// The connection to the source changed.
    State(DiscoveryState),
    /// Every model the source declares, whether or not it has a ready instance (Kubernetes:
    /// the model of every WorkerPool). A request for a declared model without instances is a
    /// 503 `model_unavailable` (scaling up, rolling out), not a 404. Replaces the previous list.
    Models(Vec<String>),
    /// Every LoRA adapter the source declares (etcd adapter keys, Kubernetes `LoraAdapter`s),
    /// each already checked ([`crate::lora::check_adapter`]). Replaces the previous list; a
    /// source that declares none sends nothing.
    Adapters(Vec<crate::lora::AdapterSpec>),
}

/// Connectivity of a discovery source, exported on `/health` details and as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryState {
    Connected,
    /// Serving the last known set.
    Disconnected,
}
