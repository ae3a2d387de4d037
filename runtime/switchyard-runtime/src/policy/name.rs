//! The native policy names: what `--policy`, `routing.policy`, `session_fallback` and each
//! `models.<name>.policy` accept. One enum, so a name is checked once where it is read and
//! code matches on variants instead of comparing strings.

use std::fmt;
use std::str::FromStr;

/// A native routing policy, spelled as in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PolicyName {
    RoundRobin,
    Random,
    P2c,
    LeastLoaded,
    Kv,
    Session,
}

impl PolicyName {
    /// Every policy, in the order help and errors list them.
    pub const ALL: &'static [PolicyName] = &[
        PolicyName::RoundRobin,
        PolicyName::Random,
        PolicyName::P2c,
        PolicyName::LeastLoaded,
        PolicyName::Kv,
        PolicyName::Session,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyName::RoundRobin => "round-robin",
            PolicyName::Random => "random",
            PolicyName::P2c => "p2c",
            PolicyName::LeastLoaded => "least-loaded",
            PolicyName::Kv => "kv",
            PolicyName::Session => "session",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown policy `{s}` (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

impl TryFrom<String> for PolicyName {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<PolicyName> for &'static str {
    fn from(p: PolicyName) -> Self {
        p.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for p in PolicyName::ALL {
            assert_eq!(p.as_str().parse::<PolicyName>(), Ok(*p));
            assert_eq!(p.to_string(), p.as_str());
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(serde_json::from_str::<PolicyName>(&json).unwrap(), *p);
        }
        let err = "fastest".parse::<PolicyName>().unwrap_err();
        assert_eq!(
            err,
            "unknown policy `fastest` (expected one of: round-robin, random, p2c, least-loaded, kv, session)"
        );
        let err = serde_json::from_str::<PolicyName>("\"fastest\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown policy `fastest`"), "{err}");
    }
}
