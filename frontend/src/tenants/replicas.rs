//! Several frontend replicas share each tenant's limits approximately (`docs/tenants.md`,
//! "Several replicas").
//!
//! With NATS, every [`WINDOW`] each replica publishes what each tenant asked of it (the
//! usage exchange, `switchyard.usage.<frontend>`) and takes a max-min fair share of each
//! limit from every live replica's demand ([`super::share`]): a tenant whose traffic all
//! lands on one replica gets its whole limit there once the others report it idle. When
//! some replica counted by the replica sync has no fresh usage report (an older build, a
//! lost connection), or without NATS, each replica enforces the static `limit / replicas`.
//! The concurrency limit is always split statically.

use std::sync::Arc;
use std::time::Duration;

use switchyard_nats::usage::{PeerReport, TenantUsage};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::share::{self, Rates};
use super::{TenantSet, Tenants};
use crate::events::BusSlot;

/// How often demand is published and shares recomputed.
pub const WINDOW: Duration = Duration::from_millis(250);
/// How long peers trust a report without a newer one (four windows).
pub const REPORT_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `limit / replicas` each.
    Static(u32),
    /// Fair shares from this many replicas' usage reports.
    Exchange(u32),
}

/// Starts sharing the limits when tenants are configured.
pub fn spawn(tenants: Arc<Tenants>, bus: BusSlot) -> Option<JoinHandle<()>> {
    tenants.current()?;
    Some(tokio::spawn(async move {
        let mut mode = Mode::Static(1);
        let mut last = Instant::now();
        let mut tick = tokio::time::interval(WINDOW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(last);
            last = now;
            let Some(set) = tenants.current() else {
                continue;
            };
            let replicas = u32::try_from(bus.replicas()).unwrap_or(u32::MAX).max(1);
            let demand: Vec<(u64, u64)> = set.iter().map(|t| t.limiter.take_demand()).collect();
            let next = match bus.usage() {
                Some(exchange) => {
                    exchange
                        .publish(elapsed, REPORT_TTL, report(&set, &demand))
                        .await;
                    let peers = exchange.fresh_peers();
                    let next = choose(replicas, Some(peers.len()));
                    if let Mode::Exchange(_) = next {
                        fold(&set, &demand, &peers, elapsed, replicas, now);
                    }
                    next
                }
                None => choose(replicas, None),
            };
            match next {
                Mode::Static(n) => {
                    tenants.set_replicas(n);
                    tenants.set_usage_replicas(0);
                }
                Mode::Exchange(n) => {
                    // A reload starts the new list's buckets from this count's even split.
                    tenants
                        .replicas
                        .store(replicas, std::sync::atomic::Ordering::Relaxed);
                    tenants.set_usage_replicas(n);
                }
            }
            if next != mode {
                match next {
                    Mode::Static(n) => tracing::info!(
                        replicas = n,
                        "tenant limits split evenly among frontend replicas"
                    ),
                    Mode::Exchange(n) => tracing::info!(
                        replicas = n,
                        "tenant limits shared by usage among frontend replicas"
                    ),
                }
                mode = next;
            }
        }
    }))
}

/// Usage shares when every replica the replica sync counts has a fresh usage report
/// (`usage_peers` of them besides this one), else the even split.
fn choose(replicas: u32, usage_peers: Option<usize>) -> Mode {
    match usage_peers.map(|n| u32::try_from(n + 1).unwrap_or(u32::MAX)) {
        Some(live) if live >= replicas => Mode::Exchange(live),
        _ => Mode::Static(replicas),
    }
}

/// This window's demand for the tenants that had any (ids only, never keys).
fn report(set: &TenantSet, demand: &[(u64, u64)]) -> Vec<TenantUsage> {
    set.iter()
        .zip(demand)
        .filter(|(_, (r, k))| *r > 0 || *k > 0)
        .map(|(t, (r, k))| TenantUsage {
            id: t.id.clone(),
            requests: *r,
            tokens: *k,
        })
        .collect()
}

/// Sets every tenant's shares from this window's local demand and the peers' reports.
fn fold(
    set: &TenantSet,
    demand: &[(u64, u64)],
    peers: &[PeerReport],
    elapsed: Duration,
    replicas: u32,
    now: Instant,
) {
    let secs = elapsed.as_secs_f64().max(0.001);
    for (t, (r, k)) in set.iter().zip(demand) {
        let mine: Rates = (*r as f64 / secs, *k as f64 / secs);
        let theirs: Vec<Rates> = peers
            .iter()
            .map(|p| p.rates.get(&t.id).copied().unwrap_or_default())
            .collect();
        t.limiter.set_replica_count(replicas);
        share::apply(&t.limiter, mine, &theirs, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn set(yaml: &str) -> TenantSet {
        let specs = super::super::config::parse_file(yaml).unwrap();
        TenantSet::build(&specs, "tenants", None).unwrap()
    }

    fn peer(rates: &[(&str, f64, f64)]) -> PeerReport {
        PeerReport {
            frontend: "peer".into(),
            rates: Arc::new(
                rates
                    .iter()
                    .map(|(id, r, k)| ((*id).to_owned(), (*r, *k)))
                    .collect::<HashMap<_, _>>(),
            ),
        }
    }

    #[test]
    fn a_replica_without_a_fresh_usage_report_means_the_even_split() {
        assert_eq!(choose(1, None), Mode::Static(1), "no NATS");
        assert_eq!(choose(3, None), Mode::Static(3));
        assert_eq!(choose(3, Some(1)), Mode::Static(3), "one peer silent");
        assert_eq!(choose(3, Some(2)), Mode::Exchange(3));
        assert_eq!(
            choose(2, Some(2)),
            Mode::Exchange(3),
            "a reporting peer the replica sync has not counted yet is folded in"
        );
        assert_eq!(
            choose(1, Some(0)),
            Mode::Exchange(1),
            "alone: the whole limit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn folding_moves_the_limit_to_where_the_demand_is() {
        let hex = "0".repeat(64);
        let set = set(&format!(
            "- id: a\n  key_sha256: {hex}\n  limits: {{requests_per_second: 10, burst: 40}}\n"
        ));
        let a = set.by_id("a").unwrap();
        let now = Instant::now();
        a.limiter.set_replicas(2, now);
        assert_eq!(a.limiter.requests_window(now).unwrap().limit, 20);
        // Busy here, the peer reports a idle: the whole limit (the level refills to it).
        for _ in 0..5 {
            a.limiter.admit(now).unwrap();
            a.limiter.release();
        }
        let demand: Vec<_> = set.iter().map(|t| t.limiter.take_demand()).collect();
        assert_eq!(demand, [(5, 0)]);
        assert_eq!(report(&set, &demand)[0].requests, 5);
        fold(&set, &demand, &[peer(&[])], WINDOW, 2, now);
        let w = a.limiter.requests_window(now).unwrap();
        assert_eq!((w.limit, w.remaining), (40, 15));
        tokio::time::advance(Duration::from_secs(2)).await;
        let w = a.limiter.requests_window(Instant::now()).unwrap();
        assert_eq!(
            w.remaining, 35,
            "refilled at the whole rate, beyond half the burst"
        );
        // Both replicas flood: half each again.
        tokio::time::advance(WINDOW).await;
        let now = Instant::now();
        fold(
            &set,
            &[(100, 0)],
            &[peer(&[("a", 400.0, 0.0)])],
            WINDOW,
            2,
            now,
        );
        assert_eq!(a.limiter.requests_window(now).unwrap().limit, 20);
        // Idle everywhere: the even split.
        fold(&set, &[(0, 0)], &[peer(&[])], WINDOW, 2, now);
        assert_eq!(a.limiter.shares().0, Some(0.5));
        assert!(
            report(&set, &[(0, 0)]).is_empty(),
            "only tenants with activity"
        );
    }
}
