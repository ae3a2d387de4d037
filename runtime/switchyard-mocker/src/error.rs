//! The mocker's error type. Request-level problems never surface here: they become OpenAI
//! error responses at the HTTP edge (`respond.rs`).

/// Why the mocker could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum MockerError {
    /// A flag is out of range.
    #[error("invalid mocker arguments: {0}")]
    InvalidArgs(String),
    /// The listener failed in a way that is not a per-connection hiccup.
    #[error("mocker listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The crate's result type.
pub type Result<T, E = MockerError> = std::result::Result<T, E>;
