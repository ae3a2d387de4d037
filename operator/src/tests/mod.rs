//! Reconciler tests against a mocked API server (see [`crate::fixtures`]).

mod config_map_watch;
mod controller_backoff;
mod figures;
mod leader;
mod loraadapter;
mod routerplugin;
mod workerpool;
mod workerpool_conflict;
mod workerpool_failures;
mod workerpool_ownership;
mod workerpool_pods;
