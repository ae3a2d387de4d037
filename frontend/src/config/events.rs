//! `events:` — where load and KV-cache information comes from besides the frontend's own
//! requests: NATS events from engines and peers, and engines' own metrics endpoints.

use serde::{Deserialize, Serialize};
use switchyard_runtime::engine_load::ScrapeConfig;

use super::{invalid, ConfigError};

/// `events:` in the YAML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSection {
    pub nats: NatsSection,
    /// Load figures read from each engine's own metrics endpoint (`docs/engines.md`).
    pub load_scrape: ScrapeConfig,
}

/// `events.nats:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSection {
    /// NATS server for KV-cache and load events (`--nats`); unset: no events.
    pub url: Option<String>,
    /// Credentials (token, user/password, creds or nkey file) and TLS; secrets are read
    /// from files.
    pub auth: switchyard_nats::NatsAuth,
}

impl EventsSection {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.nats
            .auth
            .validate()
            .map_err(|m| invalid("events.nats.auth", m))?;
        self.load_scrape
            .validate()
            .map_err(|m| invalid("events.load_scrape", m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_durations_parse_and_are_validated_by_key() {
        let section: EventsSection = serde_yaml::from_str(
            "nats: { url: nats://127.0.0.1:4222 }\nload_scrape: { interval: 1s, timeout: 500ms, stale: 3s }\n",
        )
        .unwrap();
        section.validate().unwrap();
        assert_eq!(section.load_scrape.stale_ms, 3_000);
        let bad: EventsSection =
            serde_yaml::from_str("load_scrape: { interval: 5s, stale: 1s }\n").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("events.load_scrape"), "{err}");
    }
}
