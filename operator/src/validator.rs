//! Checking that a component implements the world its `RouterPlugin.spec.kind` names.
//!
//! Behind a trait so reconciler tests use a fake; production uses the plugin host's
//! `detect_kinds`, which type-checks the component's exports against the WIT interfaces.

use std::sync::Arc;

use switchyard_k8s::PluginKind;
use switchyard_plugin_host as host;

/// Why a component could not be validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// This build cannot validate components at all; nothing may be marked Validated.
    #[error("component validation unavailable: {0}")]
    Unavailable(String),
    /// The bytes are not a loadable component (not Wasm, not a component, no plugin world).
    #[error("invalid component: {0}")]
    Invalid(String),
}

/// Finds which plugin worlds a component implements. Called on a blocking thread: compiling
/// a component can take seconds (Python components ~8 s).
pub trait ComponentValidator: Send + Sync {
    fn detect_kinds(&self, bytes: &[u8]) -> Result<Vec<PluginKind>, ValidationError>;
}

/// The production validator: compiles the component with the plugin host (wasmtime) and
/// type-checks its exports.
#[derive(Debug, Default)]
pub struct PluginHostValidator;

/// A validator that refuses to validate anything, so plugins get
/// `Validated=False, reason=ValidationUnavailable` instead of an unverified `True`.
#[derive(Debug, Default)]
pub struct UnavailableValidator;

impl ComponentValidator for PluginHostValidator {
    fn detect_kinds(&self, bytes: &[u8]) -> Result<Vec<PluginKind>, ValidationError> {
        let kinds = host::detect_kinds(bytes).map_err(|e| match e {
            host::Error::Host(m) => ValidationError::Unavailable(format!("plugin host: {m}")),
            other => ValidationError::Invalid(other.to_string()),
        })?;
        Ok(kinds.into_iter().filter_map(from_host).collect())
    }
}

/// The CRD's kind for a host kind; `Router` (all four) adds nothing beyond the four.
pub fn from_host(kind: host::PluginKind) -> Option<PluginKind> {
    match kind {
        host::PluginKind::Filter => Some(PluginKind::Filter),
        host::PluginKind::Scorer => Some(PluginKind::Scorer),
        host::PluginKind::Picker => Some(PluginKind::Picker),
        host::PluginKind::HealthPolicy => Some(PluginKind::Health),
        host::PluginKind::Router => None,
    }
}

impl ComponentValidator for UnavailableValidator {
    fn detect_kinds(&self, _bytes: &[u8]) -> Result<Vec<PluginKind>, ValidationError> {
        Err(ValidationError::Unavailable(
            "no component validator configured".to_string(),
        ))
    }
}

/// The validator the operator runs with.
pub fn default_validator() -> Arc<dyn ComponentValidator> {
    Arc::new(PluginHostValidator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_invalid_component() {
        let err = PluginHostValidator.detect_kinds(b"not wasm").unwrap_err();
        assert!(matches!(err, ValidationError::Invalid(_)), "{err}");
    }

    #[test]
    fn host_kinds_map_onto_crd_kinds() {
        assert_eq!(
            from_host(host::PluginKind::HealthPolicy),
            Some(PluginKind::Health)
        );
        assert_eq!(from_host(host::PluginKind::Router), None);
    }
}
