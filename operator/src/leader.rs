//! Lease-based leader election (`coordination.k8s.io/v1` Lease), so several operator replicas
//! can run and exactly one reconciles.
//!
//! Each step is one read and at most one write; writes carry the read's `resourceVersion`, so
//! two candidates racing for an expired lease cannot both win (the loser gets 409 Conflict).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::Api;

use crate::{Error, Result};

/// Parameters of one elector.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and candidates retry.
    pub retry_period: Duration,
}

/// Acquires and renews one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            name: "switchyard-operator".to_string(),
            namespace: "default".to_string(),
            identity: "switchyard-operator".to_string(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(5),
        }
    }
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// One election step at time `now`: creates the lease, renews it if held, or takes it over
    /// if it expired. Returns whether this replica holds the lease afterwards.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool> {
        let c = &self.config;
        let Some(mut lease) = self.api.get_opt(&c.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(c.name.clone()),
                    namespace: Some(c.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.held_spec(now, now, 0)),
            };
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        if holder == c.identity {
            let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
            lease.spec = Some(self.held_spec(now, acquired, transitions));
        } else if holder.is_empty() || expired(&spec, now) {
            lease.spec = Some(self.held_spec(now, now, transitions.saturating_add(1)));
        } else {
            return Ok(false);
        }
        self.write(
            self.api
                .replace(&c.name, &PostParams::default(), &lease)
                .await,
        )
    }

    /// Gives the lease up (on shutdown) so a standby takes over without waiting for expiry.
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    /// Blocks until this replica holds the lease.
    pub async fn acquire(&self) -> Result<()> {
        loop {
            match self.try_acquire_or_renew(Timestamp::now()).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election step failed"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the lease until a renewal has not succeeded for a whole lease duration; then
    /// returns `LostLease` (the caller must stop reconciling — the process exits and restarts).
    pub async fn keep_renewing(&self) -> Error {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew(Timestamp::now()).await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return Error::LostLease(self.config.name.clone()),
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
            if last_ok.elapsed() >= self.config.lease_duration {
                return Error::LostLease(self.config.name.clone());
            }
        }
    }

    fn held_spec(&self, now: Timestamp, acquired: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// A write that lost an optimistic-concurrency race means another replica won.
    fn write(&self, result: kube::Result<Lease>) -> Result<bool> {
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether the lease's holder has failed to renew within its duration.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    match renewed.0.checked_add(SignedDuration::from_secs(secs)) {
        Ok(deadline) => deadline < now,
        Err(_) => false,
    }
}
