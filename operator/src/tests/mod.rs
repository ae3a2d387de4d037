//! Reconciler tests against a mocked API server (see [`crate::fixtures`]).

mod figures;
mod leader;
mod routerplugin;
mod workerpool;
