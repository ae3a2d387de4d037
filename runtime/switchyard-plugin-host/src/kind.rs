//! Plugin kinds: which WIT world (and so which exported interface) a component implements.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A kind of routing decision, one per WIT world.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// `filter` world: removes ineligible candidates.
    Filter,
    /// `scorer` world: one score per candidate.
    Scorer,
    /// `picker` world: a ranked list of candidates.
    Picker,
    /// `health-policy` world: healthy/unhealthy verdicts from observations.
    #[serde(alias = "health")]
    HealthPolicy,
    /// `router` world: all four of the above.
    Router,
}

impl PluginKind {
    /// The single-decision kinds, in pipeline order (no `Router`).
    pub const DECISIONS: [PluginKind; 4] = [
        PluginKind::Filter,
        PluginKind::Scorer,
        PluginKind::Picker,
        PluginKind::HealthPolicy,
    ];

    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Filter => "filter",
            PluginKind::Scorer => "scorer",
            PluginKind::Picker => "picker",
            PluginKind::HealthPolicy => "health-policy",
            PluginKind::Router => "router",
        }
    }

    /// The exported interface that carries this kind's decision function.
    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Filter => "switchyard:plugin/filtering",
            PluginKind::Scorer => "switchyard:plugin/scoring",
            PluginKind::Picker => "switchyard:plugin/picking",
            PluginKind::HealthPolicy => "switchyard:plugin/health-assessment",
            PluginKind::Router => "switchyard:plugin/{filtering,scoring,picking,health-assessment}",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

impl FromStr for PluginKind {
    type Err = Error;

    /// Accepts the world names plus `health` (the CRD's spelling of `health-policy`).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "filter" => Ok(PluginKind::Filter),
            "scorer" => Ok(PluginKind::Scorer),
            "picker" => Ok(PluginKind::Picker),
            "health" | "health-policy" | "health_policy" => Ok(PluginKind::HealthPolicy),
            "router" => Ok(PluginKind::Router),
            _ => Err(Error::UnknownKind(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_and_round_trips() {
        for kind in PluginKind::DECISIONS
            .into_iter()
            .chain([PluginKind::Router])
        {
            assert_eq!(kind.to_string().parse::<PluginKind>().unwrap(), kind);
        }
        assert_eq!(
            "health".parse::<PluginKind>().unwrap(),
            PluginKind::HealthPolicy
        );
        assert_eq!(
            " Scorer ".parse::<PluginKind>().unwrap(),
            PluginKind::Scorer
        );
        assert!("selector".parse::<PluginKind>().is_err());
        let json: PluginKind = serde_json::from_str("\"health\"").unwrap();
        assert_eq!(json, PluginKind::HealthPolicy);
    }
}
