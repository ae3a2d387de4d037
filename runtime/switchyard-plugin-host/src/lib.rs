//! The wasmtime host that runs Switchyard's routing plugins.
//!
//! A routing plugin is a WebAssembly component implementing one or more worlds of the
//! `switchyard:plugin` WIT package (`wit/` at the repository root): a filter, a scorer,
//! a picker, a health policy, or all of them (`router`). Both package versions load:
//! 0.2.0 (`wit/v0.2/`, candidates as a frame of columns, no unsafe code on its path) and the
//! deprecated 0.1.0 (`wit/plugin.wit`, candidates as a list of records). This crate compiles such a component
//! once ([`PluginHost::load`]), keeps a small pool of ready instances per plugin, and runs each
//! decision under a hard budget:
//!
//! - an epoch deadline per call, driven by a dedicated ticker thread ([`PluginLimits::decision_budget`]);
//! - a memory cap per instance (`StoreLimits`, trap on grow failure) ([`PluginLimits::memory_bytes`]);
//! - a WASI context with nothing granted (no files, network, environment or arguments);
//! - validation of every output (length, index range, duplicates, finite scores).
//!
//! Every fault comes back as a typed [`Error`] ([`Error::is_plugin_fault`] tells the caller
//! to apply its failure policy), and a trapped instance is discarded and re-instantiated from
//! the component's `InstancePre`. [`Quarantine`] is the state machine the frontend uses to stop
//! calling a plugin that keeps failing. [`check`], [`bench`] and [`replay`] back the
//! `switchyard plugin` subcommands; [`DecisionRecord`] is the JSONL schema of
//! `--record-decisions`.
//!
//! Plugin state lives in the instance: a plugin that counts (round-robin) counts per pooled
//! instance, and a re-instantiated instance starts from scratch after `configure` and
//! `on-topology`. Plugins must not rely on state surviving a fault or being shared between
//! concurrent callers.
// Unsafe code only where wasmtime's API requires it: its canonical-ABI traits for 0.1.0's
// `list<candidate>` (`candidate.rs`) and loading a compiled artifact from the compile cache
// (`compile_cache.rs`). Every 0.2.0 module forbids it.
#![deny(unsafe_code)]

mod bench;
mod bindings;
mod bindings_v02;
mod candidate;
mod check;
mod compile_cache;
mod detect;
mod error;
mod exports;
mod frame;
mod host_state;
mod instance;
mod kind;
mod limits;
mod linker;
mod plugin;
mod plugin_host;
mod quarantine;
mod record;
mod replay;
mod replay_in_place;
mod request;
mod sample;
mod ticker;
mod validate;
mod version;
mod wasi_nonblocking;

pub use bench::{bench, BenchPoint, BenchReport, BENCH_SIZES};
pub use bindings::{Health, Instance, LogLevel, Observation, ObservationKind, Topology, Verdict};
pub use candidate::Candidate;
pub use check::{check, CheckReport, CheckStep};
pub use detect::detect_kinds;
pub use error::{Error, Result};
pub use kind::PluginKind;
pub use limits::{HostConfig, PluginLimits};
pub use plugin::{LoadedPlugin, PluginStats};
pub use plugin_host::PluginHost;
pub use quarantine::{Quarantine, QuarantinePolicy, QuarantineState};
pub use record::{
    best_scored, DecisionInput, DecisionOutput, DecisionRecord, DECISION_RECORD_VERSION,
};
pub use replay::{replay, ReplayDecision, ReplayReport, SkippedDecision};
pub use request::{Priority, Request, Stage};
pub use sample::{
    check_candidates, sample_candidates, sample_request, sample_topology, CHECK_CASES,
};
pub use version::WitVersion;
