//! Which version of the WIT package a component was built against.
#![forbid(unsafe_code)]

use std::fmt;

/// The `switchyard:plugin` package version a component's exports match. The host serves
/// both; 0.1.0 is deprecated (its candidates are a `list<candidate>` of records, which
/// costs a field-by-field copy per call).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum WitVersion {
    /// `switchyard:plugin@0.1.0` (`wit/plugin.wit`): candidates as `list<candidate>`.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `switchyard:plugin@0.2.0` (`wit/v0.2/plugin.wit`): candidates as a `frame` of columns.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl WitVersion {
    /// The package version, as written in the WIT.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
        }
    }
}

impl fmt::Display for WitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
