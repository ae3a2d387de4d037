//! A worker's part in disaggregated serving: prefill computes a prompt's KV cache and hands
//! it over, decode generates from KV it received, `both` (the default) does the whole request.

use serde::{Deserialize, Serialize};

/// Which stage(s) of a request an instance serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves whole requests; may also be picked for either stage of a disaggregated one.
    #[default]
    Both,
    /// Only computes prompts for a decode instance; never given a whole request.
    Prefill,
    /// Generates; takes whole requests too (the fallback when no prefill is usable).
    Decode,
}

impl Role {
    /// Metric label and admin value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Prefill => "prefill",
            Self::Decode => "decode",
        }
    }

    /// May be given a whole request, or the decode stage of a disaggregated one.
    pub fn decodes(self) -> bool {
        self != Self::Prefill
    }

    /// May be given the prefill stage of a disaggregated request.
    pub fn prefills(self) -> bool {
        self != Self::Decode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_lowercase_names_and_nothing_else() {
        for role in [Role::Both, Role::Prefill, Role::Decode] {
            let json = format!("\"{}\"", role.as_str());
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert!(serde_json::from_str::<Role>("\"Prefill\"").is_err());
        assert!(serde_json::from_str::<Role>("\"encode\"").is_err());
        assert!(Role::Decode.decodes() && !Role::Decode.prefills());
        assert!(!Role::Prefill.decodes() && Role::Prefill.prefills());
        assert!(Role::Both.decodes() && Role::Both.prefills());
    }
}
