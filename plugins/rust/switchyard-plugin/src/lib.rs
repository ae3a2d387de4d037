//! Guest helper for Switchyard routing plugins written in Rust against
//! `switchyard:plugin@0.2.0` (`wit/v0.2/plugin.wit`).
//!
//! The host passes a request's candidates as a frame: one column per field, which crosses
//! the component boundary as one bulk copy per column and reaches Rust without another
//! copy. This crate gives plugins typed views of it — read a column directly
//! (`frame.in_flight[i]`) or iterate candidates as structs ([`Frame::iter`], [`Candidate`]) —
//! and [`register!`], which generates the world's bindings and exports a filter, scorer,
//! picker or health policy from plain functions:
//!
//! ```ignore
//! use switchyard_plugin::{Frame, Request};
//!
//! fn score(_request: &Request, frame: &Frame) -> Vec<f64> {
//!     frame.iter().map(|c| -f64::from(c.in_flight)).collect()
//! }
//!
//! // The path of the repository's `wit/v0.2`, relative to the plugin's Cargo.toml.
//! switchyard_plugin::register!(wit: "../../../wit/v0.2", scorer: score);
//! ```
//!
//! The bindings are generated in the plugin's own crate (one world per plugin, so the
//! component exports exactly its kind); the plugin needs no `wit-bindgen` dependency of its
//! own.

mod frame;
mod register;
mod request;

pub use frame::{Candidate, Frame, Health};
pub use request::{Priority, Request, Stage};

/// The bindings generator `register!` runs (re-exported so plugins need not depend on it).
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;
