//! Limits: per plugin ([`PluginLimits`]) and per host ([`HostConfig`]). Both are serde structs
//! with defaults and a `validate()` that the host calls before using them.

use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// What one plugin may use. Durations are written as strings with a unit
/// (`"500us"`, `"5ms"`, `"2s"`) or as a bare number of milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginLimits {
    /// Linear-memory cap per instance, in bytes. Growing past it traps the call
    /// ([`Error::MemoryLimit`]). Python and JavaScript components need tens of MiB.
    pub memory_bytes: u64,
    /// Wall-clock budget of one decision call ([`Error::Timeout`] past it). Enforced by epoch
    /// interruption, so the effective limit is up to one [`HostConfig::epoch_tick`] longer.
    /// Wall-clock: time the thread spends descheduled counts, so leave room on busy hosts.
    #[serde(with = "duration_str")]
    pub decision_budget: Duration,
    /// Budget for instantiation, `configure` and `on-topology`, which may do real work.
    #[serde(with = "duration_str")]
    pub init_budget: Duration,
    /// Most idle instances kept for reuse. More concurrent callers than this still get an
    /// instance; the extras are dropped when returned.
    pub max_idle_instances: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 * MIB,
            decision_budget: Duration::from_millis(10),
            init_budget: Duration::from_secs(2),
            max_idle_instances: 8,
        }
    }
}

impl PluginLimits {
    /// Checks ranges; `host` supplies the pool's memory ceiling and the epoch tick.
    pub fn validate(&self, host: &HostConfig) -> Result<()> {
        if self.memory_bytes < MIB {
            return Err(Error::InvalidLimits(format!(
                "memoryBytes {} is below 1 MiB",
                self.memory_bytes
            )));
        }
        if self.memory_bytes > host.max_memory_bytes {
            return Err(Error::InvalidLimits(format!(
                "memoryBytes {} exceeds the host's max_memory_bytes {}",
                self.memory_bytes, host.max_memory_bytes
            )));
        }
        for (name, budget) in [
            ("decisionBudget", self.decision_budget),
            ("initBudget", self.init_budget),
        ] {
            if budget < host.epoch_tick {
                return Err(Error::InvalidLimits(format!(
                    "{name} {budget:?} is shorter than the host's epoch tick {:?}",
                    host.epoch_tick
                )));
            }
            if budget > Duration::from_secs(60) {
                return Err(Error::InvalidLimits(format!(
                    "{name} {budget:?} is longer than 60s"
                )));
            }
        }
        if self.max_idle_instances == 0 {
            return Err(Error::InvalidLimits(
                "maxIdleInstances must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Epoch ticks for `budget`: rounded up, plus one because the current tick may be about
    /// to end, so a call always gets at least its full budget.
    pub(crate) fn ticks(budget: Duration, tick: Duration) -> u64 {
        let tick_ns = tick.as_nanos().max(1);
        let ticks = budget.as_nanos().div_ceil(tick_ns);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// Host-wide settings, shared by every plugin loaded through one [`crate::PluginHost`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// How often the ticker thread advances the engine epoch: the resolution of every budget.
    #[serde(with = "switchyard_protocol::duration::serde_str")]
    pub epoch_tick: Duration,
    /// Use wasmtime's pooling allocator (pre-reserved slots, fast instantiation). Turn off only
    /// for tools that load one plugin once.
    pub pooling: bool,
    /// Concurrent instances across all plugins (pooling slots).
    pub max_instances: u32,
    /// Largest memory cap any plugin may ask for; sizes the pool's memory slots.
    pub max_memory_bytes: u64,
    /// Seed for the `host.random` import. `None` seeds from the OS; replay sets a fixed seed.
    pub rng_seed: Option<u64>,
    /// Zero of the plugins' clock (`host.monotonic-now`, WASI's clocks). The frontend passes
    /// its own clock's origin so that observation times (`at-ns`) compare with
    /// `monotonic-now`; `None`: when the host is created.
    #[serde(skip)]
    pub clock_origin: Option<Instant>,
    /// A directory for compiled components (created `0700`; see `compile_cache.rs`), so a
    /// restart or a replica sharing it skips compiling. `None`: compile every load.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(1),
            pooling: true,
            max_instances: 128,
            max_memory_bytes: 512 * MIB,
            rng_seed: None,
            clock_origin: None,
            cache_dir: None,
        }
    }
}

impl HostConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.epoch_tick < Duration::from_micros(50) || self.epoch_tick > Duration::from_secs(1) {
            return Err(Error::InvalidLimits(format!(
                "epoch_tick {:?} must be between 50us and 1s",
                self.epoch_tick
            )));
        }
        if self.max_instances == 0 || self.max_instances > 10_000 {
            return Err(Error::InvalidLimits(format!(
                "max_instances {} must be 1..=10000",
                self.max_instances
            )));
        }
        if self.max_memory_bytes < MIB || self.max_memory_bytes > 4096 * MIB {
            return Err(Error::InvalidLimits(format!(
                "max_memory_bytes {} must be between 1 MiB and 4 GiB",
                self.max_memory_bytes
            )));
        }
        Ok(())
    }
}

/// Serde for plugin-limit durations: a string in the product's one duration format
/// ([`switchyard_protocol::duration`]), or a bare JSON number of milliseconds. The number form
/// stays because the admin API's `decisionBudget=5` and existing RouterPlugin objects send it;
/// frontend YAML keys use the strict format.
pub(crate) mod duration_str {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&switchyard_protocol::duration::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
            Raw::Text(text) => {
                switchyard_protocol::duration::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let host = HostConfig::default();
        host.validate().unwrap();
        PluginLimits::default().validate(&host).unwrap();
    }

    #[test]
    fn parses_durations_and_rejects_nonsense() {
        let limits: PluginLimits = serde_json::from_str(
            r#"{"decisionBudget":"500us","initBudget":3000,"memoryBytes":33554432}"#,
        )
        .unwrap();
        assert_eq!(limits.decision_budget, Duration::from_micros(500));
        assert_eq!(limits.init_budget, Duration::from_secs(3));
        assert!(serde_json::from_str::<PluginLimits>(r#"{"decisionBudget":"5 parsecs"}"#).is_err());
        assert!(
            serde_json::from_str::<PluginLimits>(r#"{"memory":1}"#).is_err(),
            "unknown fields are refused"
        );
        let round_trip: PluginLimits =
            serde_json::from_str(&serde_json::to_string(&limits).unwrap()).unwrap();
        assert_eq!(round_trip, limits);
    }

    #[test]
    fn validation_catches_out_of_range_limits() {
        let host = HostConfig::default();
        let small_memory = PluginLimits {
            memory_bytes: 1000,
            ..PluginLimits::default()
        };
        assert!(small_memory.validate(&host).is_err());
        let huge_memory = PluginLimits {
            memory_bytes: host.max_memory_bytes + 1,
            ..PluginLimits::default()
        };
        assert!(huge_memory.validate(&host).is_err());
        let tiny_budget = PluginLimits {
            decision_budget: Duration::from_micros(10),
            ..PluginLimits::default()
        };
        assert!(tiny_budget.validate(&host).is_err());
    }

    #[test]
    fn ticks_round_up_and_add_one() {
        let tick = Duration::from_millis(1);
        assert_eq!(PluginLimits::ticks(Duration::from_millis(5), tick), 6);
        assert_eq!(PluginLimits::ticks(Duration::from_micros(5_500), tick), 7);
    }
}
