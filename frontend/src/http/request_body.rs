//! The bound on a client's request body, shared by the edge, the pipeline's parse stage and
//! the agent APIs.
//!
//! hyper's `Incoming` (the product's own server), axum's body (an embedder's router) and an
//! in-memory body (tests) all satisfy it. Every function taking one is generic over it —
//! monomorphized per body type, never boxed — so the product's own path compiles to what it
//! was when it named `Incoming`.

use bytes::Bytes;

/// What a body's read error is turned into before it becomes a client error (400, "could not
/// read the request body").
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the frontend can read: frames of [`Bytes`] and an error it can report.
pub trait RequestBody: http_body::Body<Data = Bytes, Error: Into<BoxError>> {}

impl<B> RequestBody for B where B: http_body::Body<Data = Bytes, Error: Into<BoxError>> {}
