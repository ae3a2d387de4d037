//! The `switchyard` frontend: an OpenAI-compatible HTTP server that routes each request to a
//! worker instance and streams the answer back.
//!
//! The request path is [`pipeline::generate`]; everything else here is the HTTP edge, the
//! configuration, metrics and the subcommands that assemble them.
//!
//! To run the frontend inside another program, build it with [`embed::Embedded`] and serve
//! its [`service::Frontend`] (a `tower::Service`) from your own server
//! (`frontend/examples/embed.rs`).
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_listener;
pub mod admin_plugin_params;
pub mod admin_plugins;
pub mod admission;
pub mod agent_api;
pub mod app;
pub mod body;
pub mod cli;
pub mod coalescing_io;
pub mod config;
pub mod conn_limits;
pub mod console;
pub mod demo;
pub mod discovery;
pub mod embed;
pub mod env_names;
pub mod error;
pub mod events;
pub mod flow;
pub mod http;
pub mod http_edge;
pub mod kv_bridge_cmd;
pub mod kv_shared;
pub mod lora;
pub mod metrics;
pub mod mocker_cmd;
pub mod pipeline;
pub mod plugin_cli;
pub mod plugin_new;
pub mod plugins;
pub mod predict;
pub mod readiness;
pub mod register_cmd;
pub mod serve;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod tenants;
pub mod tls;
pub mod translate;
pub mod worker_keys;
pub mod write_timeout;
