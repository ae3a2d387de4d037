//! Header names the frontend sets or reads that `http::header` does not define.

/// The request id: the client's when it sent a sane one, else a fresh one; echoed on every
/// response and sent to the worker.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The instance that answered.
pub const INSTANCE_HEADER: &str = "x-switchyard-instance";

/// nginx's per-response switch for proxy buffering; engines set it on streams too.
pub const ACCEL_BUFFERING: &str = "x-accel-buffering";
