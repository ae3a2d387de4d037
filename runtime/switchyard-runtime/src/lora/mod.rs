//! LoRA adapters: what the frontend knows about them (the configured [`AdapterSpec`]s), where
//! each one is resident ([`Residency`], per instance, from the engine's own metrics and the
//! loads this frontend made), and how residency weighs against load when ranking ([`cost`]).
//!
//! An adapter is served by the instances of its base model; a request names the adapter as
//! its `model`, and the engine picks the adapter from that name, so the body is sent as is.

pub mod cost;
pub mod discovered;
pub mod residency;
pub mod spec;

pub use cost::{rank, MISS_COST};
pub use discovered::Discovered;
pub use residency::{LoraInfo, Residency};
pub use spec::{check_adapter, validate_adapters, AdapterSpec, Catalog};
