//! The only place `bindgen!` runs. Everything generated stays private to the crate except the
//! plain data records re-exported from `lib.rs`, which carry the WIT doc comments.
//!
//! It runs twice: `generated` produces the `types` interface as usual, and the world's
//! bindings then take `types` from [`types`] — the same items, except `candidate`, which is
//! the hand-lowered [`crate::candidate::Candidate`] (bindgen can only swap whole interfaces).

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "switchyard:plugin/router",
        // Data records double as the replay trace schema, hence serde; PartialEq for tests.
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

/// The `switchyard:plugin/types` interface with the fast `candidate`.
pub mod types {
    pub use super::generated::switchyard::plugin::types::*;
    pub use crate::candidate::Candidate;
}

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "switchyard:plugin/router",
    with: { "switchyard:plugin/types": crate::bindings::types },
});

pub use exports::switchyard::plugin::{filtering, health_assessment, lifecycle, picking, scoring};
pub use switchyard::plugin::host::{Host as HostImports, LogLevel};
pub use types::{
    Health, Host as TypesImports, Instance, Observation, ObservationKind, Topology, Verdict,
};
