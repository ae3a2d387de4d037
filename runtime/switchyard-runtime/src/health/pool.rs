//! Pool-wide health rules: the max ejected fraction.

use std::sync::Arc;

use super::HealthConfig;
use crate::live::Instance;

/// Whether one more instance of `pool` may be passively ejected now. At least one may always
/// be (so a single bad instance of a small pool still goes), beyond that at most
/// `max_ejected_percent` of the pool: a correlated failure (overload, a bad request pattern)
/// must not eject every instance and turn a partial outage into a total one.
pub fn ejection_allowed(pool: &[Arc<Instance>], now_ns: u64, config: &HealthConfig) -> bool {
    if config.max_ejected_percent >= 100 {
        return true;
    }
    let ejected = pool
        .iter()
        .filter(|i| i.health.is_passively_ejected(now_ns))
        .count();
    ejected == 0 || (ejected + 1) * 100 <= config.max_ejected_percent as usize * pool.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceSpec;

    fn pool(n: usize) -> Vec<Arc<Instance>> {
        (0..n)
            .map(|i| {
                Arc::new(Instance::new(
                    InstanceSpec::new(format!("i{i}"), "m", "http://x"),
                    None,
                ))
            })
            .collect()
    }

    #[test]
    fn the_cap_stops_ejections_past_the_fraction() {
        let cfg = HealthConfig {
            failure_threshold: 1,
            max_ejected_percent: 50,
            ..HealthConfig::default()
        };
        let p = pool(4);
        assert!(ejection_allowed(&p, 0, &cfg));
        p[0].health.record_failure(0, &cfg, true);
        assert!(ejection_allowed(&p, 0, &cfg), "2 of 4 is 50 %");
        p[1].health.record_failure(0, &cfg, true);
        assert!(!ejection_allowed(&p, 0, &cfg), "3 of 4 is over 50 %");
    }

    #[test]
    fn one_ejection_is_always_allowed_and_100_means_no_cap() {
        let cfg = HealthConfig {
            failure_threshold: 1,
            max_ejected_percent: 10,
            ..HealthConfig::default()
        };
        let p = pool(2);
        assert!(ejection_allowed(&p, 0, &cfg));
        p[0].health.record_failure(0, &cfg, true);
        assert!(!ejection_allowed(&p, 0, &cfg));
        let no_cap = HealthConfig {
            max_ejected_percent: 100,
            ..cfg
        };
        assert!(ejection_allowed(&p, 0, &no_cap));
    }
}
