//! Switchyard's Kubernetes pieces, shared by the operator and the frontend: the `WorkerPool`
//! and `RouterPlugin` custom resources (group `switchyard.dev`, version `v1alpha1`), the labels
//! that tie pods to pools, fetching and verifying plugin components, and the frontend's
//! Kubernetes discovery (instances from WorkerPools + EndpointSlices, plugins from validated
//! RouterPlugins).
//!
//! Kept apart from `switchyard-runtime` because kube and k8s-openapi are heavy to compile.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod conditions;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod fetch_guard;
pub mod instances;
pub mod labels;
pub mod loraadapter;
pub mod ownership;
pub mod plugins;
pub mod routerplugin;
mod schema;
pub mod scope;
pub mod source;
pub mod tenancy;
pub mod trust;
pub mod workerpool;

pub use discovery::run_discovery;
pub use error::{Error, Result};
pub use loraadapter::{LoraAdapter, LoraAdapterSpec, LoraAdapterStatus};
pub use plugins::{run_plugin_discovery, PluginArtifact, PluginEvent};
pub use routerplugin::{
    AppliesTo, ConfigMapSource, FailurePolicy, PluginKind, PluginLimits, PluginMode, PluginSource,
    RouterPlugin, RouterPluginSpec, RouterPluginStatus,
};
pub use scope::WatchScope;
pub use workerpool::{
    EngineKind, HealthCheck, KvEvents, ModelCache, Routing, WorkerApiKind, WorkerPool,
    WorkerPoolSpec, WorkerPoolStatus, WorkerRole, WorkerTemplate,
};
