//! etcd discovery for Switchyard.
//!
//! Workers (or the `switchyard register` sidecar on their behalf) write their
//! [`InstanceSpec`](switchyard_runtime::InstanceSpec) as JSON under a key prefix, attached to a
//! lease they keep alive; a worker that dies stops renewing and etcd deletes the key when the
//! lease expires. Frontends list the prefix, then watch it from the listed revision, and turn
//! what they see into [`DiscoveryEvent`](switchyard_runtime::DiscoveryEvent)s. When etcd is
//! unreachable the frontend is told `Disconnected` and keeps its last known set (fail-static);
//! when etcd returns it gets a fresh `Snapshot`.
//!
//! - [`keys`]: the key layout (documented in `docs/discovery.md`).
//! - [`adapters`]: LoRA adapters declared under a base model's key prefix.
//! - [`Registration`]: the worker side — lease, keep-alive, re-registration, deregistration.
//! - [`spawn_discovery`]: the frontend side — list, watch, reconnect, resync.
//! - [`run_sidecar`]: registration driven by a worker's `/health`.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod backoff;
pub mod config;
pub mod discovery;
pub mod error;
pub mod keys;
pub mod registration;
pub mod sidecar;

pub use config::{EtcdAuth, EtcdConfig};
pub use discovery::spawn_discovery;
pub use error::{Error, Result};
pub use registration::{Registration, RegistrationState};
pub use sidecar::{run_sidecar, SidecarConfig};
