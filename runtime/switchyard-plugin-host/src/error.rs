//! The crate's error type. Plugin faults and host/setup errors share one enum so callers match
//! once; [`Error::is_plugin_fault`] separates "apply the failure policy" from "fix your setup".

use std::time::Duration;

use crate::PluginKind;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong loading or calling a plugin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host itself could not start (engine configuration, linker, ticker thread).
    #[error("the plugin host could not start: {0}")]
    Host(String),
    /// The bytes are not a valid component, or wasmtime could not compile them.
    #[error("not a loadable WebAssembly component: {0}")]
    Compile(String),
    /// The component compiles but does not export any Switchyard plugin world, or imports
    /// something the host does not provide.
    #[error("the component does not implement a switchyard:plugin world (0.2.0 or 0.1.0): {0}")]
    NotAPlugin(String),
    /// A call asked for a kind the component does not export.
    #[error("the plugin does not implement the {0} interface")]
    KindNotImplemented(PluginKind),
    /// A plugin kind name that is not `filter`, `scorer`, `picker`, `health` or `router`.
    #[error("unknown plugin kind {0:?} (expected filter, scorer, picker, health or router)")]
    UnknownKind(String),
    /// Limits or host configuration are out of range.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),
    /// The plugin's `configure` export refused its configuration.
    #[error("the plugin rejected its configuration: {0}")]
    ConfigRejected(String),
    /// Creating or initialising an instance failed (pool exhausted, start-up trap, ...).
    #[error("instantiating the plugin failed: {0}")]
    Instantiate(String),
    /// The plugin trapped (panic, unreachable, stack overflow, out-of-bounds access, ...).
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its budget and was interrupted by the epoch deadline.
    #[error("the plugin exceeded its {budget:?} budget")]
    Timeout {
        /// The budget that was exceeded.
        budget: Duration,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error("the plugin exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// The cap in bytes.
        limit_bytes: usize,
    },
    /// The call returned, but with an answer the host cannot use.
    #[error("the plugin returned an invalid answer: {0}")]
    InvalidOutput(String),
    /// A replay trace line could not be read or parsed.
    #[error("trace line {line}: {message}")]
    Trace {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    /// Whether the error is the plugin misbehaving at decision time (as opposed to a setup
    /// error). These are the errors a failure policy and the quarantine apply to.
    pub fn is_plugin_fault(&self) -> bool {
        matches!(
            self,
            Error::Trap(_)
                | Error::Timeout { .. }
                | Error::MemoryLimit { .. }
                | Error::InvalidOutput(_)
                | Error::Instantiate(_)
        )
    }

    /// Whether the instance that produced this error must be thrown away: after a trap the
    /// instance's state is undefined and wasmtime refuses to enter it again.
    pub(crate) fn poisons_instance(&self) -> bool {
        matches!(
            self,
            Error::Trap(_) | Error::Timeout { .. } | Error::MemoryLimit { .. }
        )
    }

    /// A short, stable label for metrics (`switchyard_plugin_faults_total{reason=...}`).
    pub fn label(&self) -> &'static str {
        match self {
            Error::Host(_) => "host",
            Error::Compile(_) => "compile",
            Error::NotAPlugin(_) => "not_a_plugin",
            Error::KindNotImplemented(_) => "kind_not_implemented",
            Error::UnknownKind(_) => "unknown_kind",
            Error::InvalidLimits(_) => "invalid_limits",
            Error::ConfigRejected(_) => "config_rejected",
            Error::Instantiate(_) => "instantiate",
            Error::Trap(_) => "trap",
            Error::Timeout { .. } => "timeout",
            Error::MemoryLimit { .. } => "memory_limit",
            Error::InvalidOutput(_) => "invalid_output",
            Error::Trace { .. } => "trace",
        }
    }
}
