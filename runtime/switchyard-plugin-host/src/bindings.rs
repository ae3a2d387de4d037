//! The only place `bindgen!` runs. Everything generated stays private to the crate except the
//! plain data records re-exported from `lib.rs`, which carry the WIT doc comments.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "switchyard:plugin/router",
    // Data records double as the replay trace schema, hence serde; PartialEq for tests.
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use exports::switchyard::plugin::{filtering, health_assessment, lifecycle, picking, scoring};
pub use switchyard::plugin::host::{Host as HostImports, LogLevel};
pub use switchyard::plugin::types::{
    Candidate, Health, Host as TypesImports, Instance, Observation, ObservationKind, Request,
    Topology, Verdict,
};
