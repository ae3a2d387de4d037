//! Lease-based leader election (`coordination.k8s.io/v1` Lease), so several operator replicas
//! can run and exactly one reconciles.
//!
//! The rules that keep it at one leader, as client-go's leaderelection package has them:
//!
//! - Writes carry the read's `resourceVersion`, so two candidates racing for a lease cannot both
//!   win (the loser gets 409 Conflict).
//! - A lease is judged expired by *local* time: a candidate notes when it last saw the lease
//!   record change and takes over only after `leaseDurationSeconds` without a change. The
//!   holder's `renewTime` is never compared with the local clock, so clock skew between nodes
//!   does not matter (only clock *rates*, which barely differ). A candidate that has just
//!   started waits a whole lease duration before taking over.
//! - The leader steps down when it has not renewed for `renew_deadline`, which is shorter than
//!   the lease duration: it has stopped before any standby can see the lease as expired.
//! - Every API call has a timeout (and a renewal never runs past the renew deadline), so a hung
//!   connection cannot keep a leader past its deadline.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::{Error, Result};

/// Parameters of one elector.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease stays valid without renewal (written to `leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// The leader steps down when it has not renewed for this long; shorter than
    /// `lease_duration`, so it stops before a standby may take over.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates retry.
    pub retry_period: Duration,
    /// Timeout of one Lease API call.
    pub api_timeout: Duration,
}

/// Acquires and renews one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The lease record as last read or written, and when (local time) it last changed.
    observed: Mutex<Option<(LeaseSpec, Instant)>>,
}

impl Default for LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry; 5 s per call.
    fn default() -> Self {
        Self {
            name: "switchyard-operator".to_string(),
            namespace: "default".to_string(),
            identity: "switchyard-operator".to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            api_timeout: Duration::from_secs(5),
        }
    }
}

impl LeaseConfig {
    /// Checks the ordering the safety argument needs.
    pub fn validate(&self) -> Result<(), String> {
        let zero = Duration::ZERO;
        if self.retry_period == zero || self.api_timeout == zero {
            return Err("retry period and API timeout must be positive".to_string());
        }
        if self.renew_deadline <= self.retry_period {
            return Err("the renew deadline must be longer than the retry period".to_string());
        }
        if self.lease_duration <= self.renew_deadline {
            return Err("the lease duration must be longer than the renew deadline".to_string());
        }
        Ok(())
    }
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        }
    }

    /// One election step; `now` is written as the lease's `renewTime` (informational: expiry is
    /// judged by local observation). Creates the lease, renews it if held, or takes it over if
    /// it has not changed for its duration. Returns whether this replica holds the lease.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool> {
        let c = &self.config;
        let Some(mut lease) = self.call(self.api.get_opt(&c.name)).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(c.name.clone()),
                    namespace: Some(c.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.held_spec(now, now, 0)),
            };
            let created = self
                .call(self.api.create(&PostParams::default(), &lease))
                .await;
            return self.written(created);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let changed_at = self.observe(&spec);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        if holder == c.identity {
            let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
            lease.spec = Some(self.held_spec(now, acquired, transitions));
        } else if holder.is_empty() || changed_at + self.duration_of(&spec) <= Instant::now() {
            lease.spec = Some(self.held_spec(now, now, transitions.saturating_add(1)));
        } else {
            return Ok(false);
        }
        let replaced = self
            .call(self.api.replace(&c.name, &PostParams::default(), &lease))
            .await;
        self.written(replaced)
    }

    /// Gives the lease up (on shutdown) so a standby takes over without waiting for expiry.
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.call(self.api.get_opt(&self.config.name)).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        self.call(
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease),
        )
        .await?;
        Ok(())
    }

    /// Blocks until this replica holds the lease; returns when the winning attempt started
    /// (the lease counts as renewed from then, conservatively).
    pub async fn acquire(&self) -> Instant {
        loop {
            let started = Instant::now();
            match self.try_acquire_or_renew(Timestamp::now()).await {
                Ok(true) => return started,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election step failed"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the lease every retry period, starting from a renewal at `renewed`. Returns when
    /// this replica must stop reconciling: another replica holds the lease
    /// ([`Error::LostLease`]), or no renewal succeeded within the renew deadline
    /// ([`Error::RenewDeadline`]; a renewal in progress is abandoned at the deadline).
    pub async fn keep_renewing(&self, mut renewed: Instant) -> Error {
        let c = &self.config;
        loop {
            let deadline = renewed + c.renew_deadline;
            tokio::time::sleep_until((Instant::now() + c.retry_period).min(deadline)).await;
            let started = Instant::now();
            if started >= deadline {
                return Error::RenewDeadline(c.name.clone());
            }
            let attempt = self.try_acquire_or_renew(Timestamp::now());
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(true)) => renewed = started,
                Ok(Ok(false)) => return Error::LostLease(c.name.clone()),
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                Err(_) => return Error::RenewDeadline(c.name.clone()),
            }
        }
    }

    /// Runs one API call with the configured timeout.
    async fn call<T>(&self, fut: impl std::future::Future<Output = kube::Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.config.api_timeout, fut).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Error::Timeout(self.config.api_timeout)),
        }
    }

    /// Records `spec` as seen now; returns when the record was first seen in this form.
    fn observe(&self, spec: &LeaseSpec) -> Instant {
        let mut observed = self.observed.lock();
        match observed.as_ref() {
            Some((seen, at)) if seen == spec => *at,
            _ => {
                let now = Instant::now();
                *observed = Some((spec.clone(), now));
                now
            }
        }
    }

    /// The duration the lease's holder declared, or ours when it declared none.
    fn duration_of(&self, spec: &LeaseSpec) -> Duration {
        spec.lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.config.lease_duration)
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

    /// A successful write is observed like a read; one that lost an optimistic-concurrency
    /// race means another replica won.
    fn written(&self, result: Result<Lease>) -> Result<bool> {
        match result {
            Ok(lease) => {
                self.observe(&lease.spec.unwrap_or_default());
                Ok(true)
            }
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
