//! `bindgen!` for `switchyard:plugin@0.2.0` (`wit/v0.2/`), the world whose filters, scorers
//! and pickers take the candidates as a frame of columns. Everything here goes through
//! wasmtime's public typed API: a `list<u32>`/`list<f32>`/`list<u8>` column lowers as one
//! bulk copy (wasmtime's `Lower` for primitive slices), so unlike 0.1's `list<candidate>`
//! (see `candidate.rs`) nothing needs a hand-written lowering.
#![forbid(unsafe_code)]

wasmtime::component::bindgen!({
    path: "../../wit/v0.2",
    world: "switchyard:plugin/router",
});

pub use exports::switchyard::plugin::{filtering, health_assessment, lifecycle, picking, scoring};
pub use switchyard::plugin::host::{Host as HostImports, LogLevel};
pub use switchyard::plugin::types;
pub use types::Host as TypesImports;
