//! The crate's one error type.

/// Everything that can go wrong talking to etcd or a worker's health endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("instance spec: {0}")]
    Spec(#[from] serde_json::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("etcd lease {0} expired or was revoked")]
    LeaseLost(i64),
    #[error("etcd {0} timed out")]
    Timeout(&'static str),
    #[error("health check: {0}")]
    Health(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
