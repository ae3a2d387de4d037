//! Wasm plugins on the request path: configuration, the loaded set with atomic swaps, the
//! filter → scorer → picker chain, shadow runs, explanations, decision recording, and the
//! background tasks (topology delivery, file watch, health policies).

pub mod chain;
pub mod config;
pub mod entry;
pub mod explain;
pub mod health_scope;
pub mod loads;
pub mod recent;
pub mod record;
pub mod set;
pub mod shadow;
pub mod tasks;

pub use config::{parse_plugin_flag, FailurePolicy, PluginConfig, PluginMode};
pub use entry::{FileStamp, PluginSource};
pub use set::{LoadError, PluginSet, PluginTable};
