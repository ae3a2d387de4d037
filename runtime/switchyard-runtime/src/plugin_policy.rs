//! How a plugin's decisions are used, shared by the frontend's `plugins:` config, the admin API
//! and the `RouterPlugin` CRD (one type each, one serialized form: `FailOpen`, `Active`, …).

use serde::{Deserialize, Serialize};

/// What happens when a plugin faults (traps, overruns, returns garbage) or is quarantined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FailurePolicy {
    /// Fall back to the native policy.
    #[default]
    FailOpen,
    /// Fail the request with an error, on purpose.
    FailClosed,
}

/// Whether a plugin decides or only observes (runs off the request path on the same
/// candidates, its disagreements counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PluginMode {
    #[default]
    Active,
    Shadow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serialized_forms_are_the_variant_names() {
        for (v, s) in [
            (serde_json::to_value(FailurePolicy::FailOpen), "FailOpen"),
            (
                serde_json::to_value(FailurePolicy::FailClosed),
                "FailClosed",
            ),
            (serde_json::to_value(PluginMode::Active), "Active"),
            (serde_json::to_value(PluginMode::Shadow), "Shadow"),
        ] {
            assert_eq!(v.unwrap(), serde_json::json!(s));
        }
    }
}
