//! The operator library's error type.

/// Everything a reconcile or the leader elector can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed (retried with backoff by the error policy).
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A shared Kubernetes helper failed.
    #[error(transparent)]
    K8s(#[from] switchyard_k8s::Error),
    /// A resource lacks a field the API server always sets.
    #[error("object is missing {0}")]
    MissingField(&'static str),
    /// The spec asks for something the operator cannot build (e.g. a KV-event bridge with no
    /// NATS URL anywhere); fixed by editing the pool, reported as a condition and an Event.
    #[error("spec: {0}")]
    Spec(String),
    /// A child the pool would write (its Deployment or Service) exists and belongs to someone
    /// else ([`crate::children`]); reported on the pool, retried with backoff.
    #[error("{0}")]
    NotOwned(String),
    /// A background validation task failed to run.
    #[error("validation task: {0}")]
    Task(String),
    /// Serving `/metrics` or the probes failed.
    #[error("metrics server: {0}")]
    Server(#[from] std::io::Error),
    /// Another replica holds the leader lease.
    #[error("lost leadership of lease {0}: another replica holds it")]
    LostLease(String),
    /// The leader could not renew its lease within the renew deadline and stepped down.
    #[error("stepped down from lease {0}: no renewal succeeded within the renew deadline")]
    RenewDeadline(String),
    /// A Lease API call did not answer in time.
    #[error("lease API call timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl Error {
    /// Short label for the `error` dimension of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(_)) => "api",
            Self::Kube(_) => "client",
            Self::K8s(_) => "k8s",
            Self::MissingField(_) => "missing_field",
            Self::Spec(_) => "spec",
            Self::NotOwned(_) => "not_owned",
            Self::Task(_) => "task",
            Self::Server(_) => "server",
            Self::LostLease(_) => "lost_lease",
            Self::RenewDeadline(_) => "renew_deadline",
            Self::Timeout(_) => "timeout",
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
