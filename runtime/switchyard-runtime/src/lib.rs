//! Switchyard's routing runtime: the instance set a frontend routes over, where it comes from
//! (discovery), whether each instance is usable (health), how one is chosen (native policies)
//! and how a request reaches it (the pooled worker client).
//!
//! Crates with heavy dependencies (wasmtime, etcd-client, async-nats, kube) sit beside this one
//! and plug in through [`discovery::DiscoveryEvent`] and the [`policy::Policy`] trait.
#![forbid(unsafe_code)]

pub mod apis;
pub mod client;
pub mod client_tls;
pub mod clock;
pub mod declared;
pub mod discovery;
pub mod engine_load;
pub mod exposition;
pub mod health;
pub mod hf_template;
pub mod instance;
pub mod live;
pub mod lora;
pub mod observe;
pub mod plugin_policy;
pub mod policy;
pub mod registry;
pub mod role;
pub mod served_models;
pub mod spec_check;
pub mod template;
pub mod templates;

pub use apis::Api;
pub use client::{ClientConfig, ClientError, Transport, WorkerBody, WorkerClient};
pub use discovery::{DiscoveryEvent, DiscoveryState};
pub use instance::{Engine, InstanceSpec, WorkerApi, WorkerAuth};
pub use live::{EngineReport, InFlightGuard, Instance, ReportSource};
pub use policy::{Policy, PolicyConfig, PolicyName, RouteContext};
pub use registry::{Registry, Topology};
pub use role::Role;
pub use spec_check::{Reason as RejectReason, Rejection};
pub use template::{ChatTemplate, TemplateError};
pub use templates::TemplateCatalog;
