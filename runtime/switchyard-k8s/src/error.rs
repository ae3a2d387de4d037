//! The crate's error type.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A watch stream failed (the watcher retries on its own; this is reported, not fatal).
    #[error("watch: {0}")]
    Watch(#[from] kube::runtime::watcher::Error),
    /// The ConfigMap a plugin names does not exist.
    #[error("ConfigMap {namespace}/{name} not found")]
    ConfigMapNotFound { namespace: String, name: String },
    /// The ConfigMap exists but has no such `binaryData` key.
    #[error("ConfigMap {namespace}/{name} has no binaryData key {key:?}{hint}")]
    KeyNotFound {
        namespace: String,
        name: String,
        key: String,
        hint: &'static str,
    },
    /// Fetching a plugin URL failed.
    #[error("fetching {url}: {message}")]
    Fetch { url: String, message: String },
    /// The component is larger than allowed.
    #[error("component is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The bytes do not hash to the declared digest.
    #[error("sha256 mismatch: spec.source.sha256 is {expected} but the bytes hash to {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// The CRDs could not be rendered.
    #[error("rendering CRDs: {0}")]
    Render(#[from] serde_yaml::Error),
    /// A resource lacks a field the API server always sets (namespace, name).
    #[error("object is missing {0}")]
    MissingField(&'static str),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
