//! Switchyard's routing runtime: the instance set a frontend routes over, where it comes from
//! (discovery), whether each instance is usable (health), how one is chosen (native policies)
//! and how a request reaches it (the pooled worker client).
//!
//! Crates with heavy dependencies (wasmtime, etcd-client, async-nats, kube) sit beside this one
//! and plug in through [`discovery::DiscoveryEvent`] and the policy trait.
#![forbid(unsafe_code)]

pub mod discovery;
pub mod instance;
pub mod template;

pub use discovery::{DiscoveryEvent, DiscoveryState};
pub use instance::{Engine, InstanceSpec, WorkerApi};
pub use template::{ChatTemplate, TemplateError};
