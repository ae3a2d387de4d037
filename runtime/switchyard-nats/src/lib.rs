//! NATS events for Switchyard (core NATS only: no JetStream).
//!
//! Workers publish what is in their KV cache and how loaded they are; frontends keep a KV
//! index from it and share their own in-flight counts with each other. Every subject and
//! payload is documented in `docs/events.md`.
//!
//! - [`connect`]: one NATS connection plus a watch of its state (reconnects counted).
//! - [`Publisher`]: worker side — sequenced KV events, load snapshots, dump replies.
//! - [`Subscriber`]: frontend side — applies events to a [`SharedKvIndex`], detects sequence
//!   gaps and resyncs from a dump, tracks load, resyncs after a reconnect.
//! - [`ReplicaSync`]: frontends exchange per-instance in-flight counts.
//! - [`decisions`]: frontends share their routing decisions for their approximate indexes.
//! - [`bridge`]: vLLM's ZMQ KV-event stream, re-hashed and republished as an instance.
//!
//! [`SharedKvIndex`]: switchyard_kv::SharedKvIndex
#![forbid(unsafe_code)]

pub mod auth;
pub mod bridge;
pub mod conn;
pub mod decisions;
pub mod dump;
pub mod error;
pub mod inbound;
mod members;
pub mod publisher;
pub mod redact;
pub mod replica;
pub mod subjects;
pub mod subscriber;
pub mod usage;
pub mod vllm;
pub mod wire;

pub use auth::{NatsAuth, NatsTls};
pub use conn::{connect, connect_with, ConnState, NatsConnection};
pub use error::{Error, Result};
pub use publisher::{DumpFn, Publisher};
pub use redact::redact_url;
pub use replica::{ReplicaSync, ReplicaSyncConfig};
pub use subscriber::{Subscriber, SubscriberConfig, SubscriberStats};
pub use wire::LoadSnapshot;
