//! Several frontend replicas share each tenant's limits approximately: each replica
//! enforces `limit / replicas`, with the replica count taken from the NATS replica sync
//! (this frontend plus its live peers; 1 without `--nats`). Checked once a second.
//!
//! The error bound: with requests spread evenly over N replicas a tenant gets its limit; a
//! load balancer that sends all of a tenant's traffic to one replica caps it at `limit / N`;
//! and for up to a second plus the peer TTL after a replica joins or leaves, the replicas
//! together may allow up to `limit × (N+1) / N` or as little as `limit × (N-1) / N`.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Tenants;

const PERIOD: Duration = Duration::from_secs(1);

/// Starts following the replica count when tenants are configured.
pub fn spawn(
    tenants: Arc<Tenants>,
    replicas: impl Fn() -> usize + Send + 'static,
) -> Option<JoinHandle<()>> {
    tenants.current()?;
    Some(tokio::spawn(async move {
        let mut last = 1;
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            let now = u32::try_from(replicas()).unwrap_or(u32::MAX).max(1);
            if now != last {
                tracing::info!(
                    replicas = now,
                    "tenant limits shared among frontend replicas"
                );
                tenants.set_replicas(now);
                last = now;
            }
        }
    }))
}
