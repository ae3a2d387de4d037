//! Checking that a component implements the world its `RouterPlugin.spec.kind` names.
//!
//! Behind a trait so reconciler tests use a fake; production uses the plugin host crate.

use switchyard_k8s::PluginKind;

/// Why a component could not be validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// This build cannot validate components at all; nothing may be marked Validated.
    #[error("component validation unavailable: {0}")]
    Unavailable(String),
    /// The bytes are not a loadable component (not Wasm, not a component, fails to compile).
    #[error("invalid component: {0}")]
    Invalid(String),
}

/// Finds which plugin worlds a component implements. Called on a blocking thread: compiling
/// a component can take seconds (Python components ~8 s).
pub trait ComponentValidator: Send + Sync {
    fn detect_kinds(&self, bytes: &[u8]) -> Result<Vec<PluginKind>, ValidationError>;
}

/// The validator of this build: refuses to validate anything, so plugins get
/// `Validated=False, reason=ValidationUnavailable` instead of an unverified `True`.
#[derive(Debug, Default)]
pub struct UnavailableValidator;

impl ComponentValidator for UnavailableValidator {
    fn detect_kinds(&self, _bytes: &[u8]) -> Result<Vec<PluginKind>, ValidationError> {
        Err(ValidationError::Unavailable(
            "this switchyard-operator build has no Wasm plugin host; build it with the plugin host to validate components"
                .to_string(),
        ))
    }
}

/// The validator the operator runs with.
pub fn default_validator() -> std::sync::Arc<dyn ComponentValidator> {
    std::sync::Arc::new(UnavailableValidator)
}
