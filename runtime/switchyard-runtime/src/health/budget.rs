//! The retry budget: retries in flight may be at most a share of the requests in flight
//! (with a floor), so a failing pool turns into fast errors instead of a retry storm that
//! multiplies its load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Retries in flight as a percentage of requests in flight.
    pub percent: u32,
    /// Retries in flight always allowed, however few requests are active.
    pub min_concurrent: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            percent: 20,
            min_concurrent: 3,
        }
    }
}

impl RetryBudgetConfig {
    /// `percent` is a share of the requests in flight, as in Envoy's retry budget.
    pub fn validate(&self) -> Result<(), String> {
        if self.percent > 100 {
            return Err(format!(
                "retry_budget.percent must be between 0 and 100, got {}",
                self.percent
            ));
        }
        Ok(())
    }
}

/// Shared by all requests of a frontend.
#[derive(Debug, Default)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    outstanding: AtomicU32,
    exhausted: AtomicU64,
}

/// One retry's share of the budget, returned on drop.
#[derive(Debug)]
pub struct RetryPermit<'a> {
    budget: &'a RetryBudget,
}

impl Drop for RetryPermit<'_> {
    fn drop(&mut self) {
        self.budget.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> Self {
        Self {
            config,
            outstanding: AtomicU32::new(0),
            exhausted: AtomicU64::new(0),
        }
    }

    /// A permit that is never refused, though it counts against the budget like any other:
    /// for re-issues that are bounded elsewhere (a stream's first migration, bounded by
    /// `migration_limit`), so that they do not starve and later retries still see them.
    pub fn acquire(&self) -> RetryPermit<'_> {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        RetryPermit { budget: self }
    }

    /// A permit for one more retry, given `active` requests in flight; `None` (and the
    /// exhaustion counter bumped) when the budget is spent.
    pub fn try_acquire(&self, active: u64) -> Option<RetryPermit<'_>> {
        let share = active.saturating_mul(u64::from(self.config.percent)) / 100;
        let limit = share.max(u64::from(self.config.min_concurrent));
        let mut current = self.outstanding.load(Ordering::Relaxed);
        loop {
            if u64::from(current) >= limit {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match self.outstanding.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(RetryPermit { budget: self }),
                Err(seen) => current = seen,
            }
        }
    }

    /// Retries refused because the budget was spent (a counter).
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_applies_with_few_requests() {
        let b = RetryBudget::new(RetryBudgetConfig {
            percent: 20,
            min_concurrent: 2,
        });
        let p1 = b.try_acquire(1);
        let p2 = b.try_acquire(1);
        assert!(p1.is_some() && p2.is_some());
        assert!(b.try_acquire(1).is_none());
        assert_eq!(b.exhausted(), 1);
        drop(p1);
        assert!(
            b.try_acquire(1).is_some(),
            "a returned permit can be reused"
        );
    }

    #[test]
    fn an_unrefusable_permit_still_counts_against_the_budget() {
        let b = RetryBudget::new(RetryBudgetConfig {
            percent: 0,
            min_concurrent: 1,
        });
        let forced = b.acquire();
        let again = b.acquire();
        assert!(
            b.try_acquire(100).is_none(),
            "the forced permits fill the budget"
        );
        drop((forced, again));
        assert!(b.try_acquire(100).is_some(), "and give it back on drop");
    }

    #[test]
    fn a_share_over_100_percent_is_refused() {
        let config = RetryBudgetConfig {
            percent: 101,
            min_concurrent: 3,
        };
        assert!(config
            .validate()
            .unwrap_err()
            .contains("retry_budget.percent"));
        assert!(RetryBudgetConfig::default().validate().is_ok());
    }

    #[test]
    fn the_share_applies_with_many_requests() {
        let b = RetryBudget::new(RetryBudgetConfig {
            percent: 20,
            min_concurrent: 1,
        });
        let permits: Vec<_> = (0..20).map_while(|_| b.try_acquire(100)).collect();
        assert_eq!(permits.len(), 20);
        assert!(b.try_acquire(100).is_none());
        drop(permits);
        assert_eq!(b.outstanding(), 0);
    }
}
