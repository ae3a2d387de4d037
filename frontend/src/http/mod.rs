//! What the HTTP edge, the pipeline, the admin API and the agent APIs share, below all of
//! them: header names and the rendering of an [`ApiError`](crate::error::ApiError) or a JSON
//! value into a response. It names no other frontend module but `error`, so everything may
//! depend on it and nothing it depends on depends back (docs/architecture.md, "Module
//! dependencies").
//!
//! The client's request body is any [`RequestBody`], so the same edge serves hyper's
//! connections, an embedder's server and in-memory test requests.
//!
//! The rendering is generic over the response body (`B: From<Bytes>`): the body type itself
//! ([`crate::body::Body`]) composes the pipeline's relays and so sits above the pipeline.

mod headers;
mod render;
mod request_body;
mod token;

pub use headers::{ACCEL_BUFFERING, INSTANCE_HEADER, REQUEST_ID_HEADER};
pub use render::{error_response, json_response};
pub use request_body::{BoxError, RequestBody};
pub use token::constant_time_eq;
