//! The Switchyard operator: reconciles `WorkerPool`s into a Deployment and a headless Service
//! each (server-side apply, owner references, status with ready endpoints), and validates
//! `RouterPlugin`s (fetch, sha256, world check) so frontends load only verified components.
//!
//! One file per concept, controller-rs style: [`context`] (shared state), [`workerpool`] and
//! [`routerplugin`] (reconcile + error policy), [`manifests`] (child objects), [`backoff`],
//! [`leader`] (Lease election), [`metrics`], [`server`] (`/healthz`, `/readyz`, `/metrics`),
//! [`controller`] (wiring), [`plugin_sources`] (ConfigMap → RouterPlugins), [`validator`]
//! (the world check), [`loraadapter`] (keep LoRA adapters loaded; [`lora_engine`] speaks the
//! engines' adapter API).
#![forbid(unsafe_code)]

pub mod api_key;
pub mod backoff;
pub mod bounded_validator;
pub mod children;
pub mod context;
pub mod controller;
pub mod error;
pub mod failure;
pub mod kv_bridge;
pub mod leader;
pub mod lora_engine;
pub mod lora_keys;
pub mod loraadapter;
pub mod manifests;
pub mod metrics;
pub mod ownership;
pub mod plugin_sources;
pub mod pod_extras;
pub mod routerplugin;
pub mod server;
pub mod sidecars;
pub mod validator;
pub mod workerpool;

#[cfg(test)]
mod fixtures;

pub use context::Context;
pub use error::{Error, Result};
#[cfg(test)]
mod tests;
