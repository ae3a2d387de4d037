//! The worker side: an instance's key, attached to a lease that is kept alive.
//!
//! The lease is what makes a killed worker disappear: nobody renews it, etcd expires it after
//! the TTL and deletes the key, and every watching frontend sees the delete. A clean shutdown
//! does not wait for that: [`Registration::deregister`] revokes the lease, which deletes the key
//! at once.
//!
//! The registration survives etcd outages: when keep-alive fails the task reconnects with
//! backoff and registers again under a fresh lease (the old one may have expired meanwhile).

use std::time::Duration;

use etcd_client::{Client, PutOptions};
use switchyard_runtime::InstanceSpec;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::keys::instance_key;
use crate::{Error, EtcdConfig, Result};

/// Default lease TTL: a killed worker is routed to for at most this long.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not (yet, or no longer) registered; the task is trying.
    Connecting,
    /// The key exists under this lease.
    Registered { lease: i64 },
    /// Deregistered on request; the task has ended.
    Stopped,
}

/// A live registration. Dropping it without [`deregister`](Self::deregister) stops the
/// keep-alive, so the key vanishes after the TTL — exactly what a crash looks like.
#[derive(Debug)]
pub struct Registration {
    key: String,
    state: watch::Receiver<RegistrationState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl Registration {
    /// Starts registering `spec` with a lease of `ttl` (whole seconds, at least 2: etcd's
    /// minimum). Returns at once; the task keeps trying until it succeeds.
    pub fn spawn(cfg: EtcdConfig, spec: InstanceSpec, ttl: Duration) -> Result<Self> {
        cfg.validate()?;
        if spec.id.is_empty() || spec.model.is_empty() || spec.url.is_empty() {
            return Err(Error::Config(
                "an instance needs a non-empty id, model and url".into(),
            ));
        }
        let key = instance_key(&cfg.prefix, &spec.model, &spec.id);
        let value = serde_json::to_vec(&spec)?;
        let ttl_secs = ttl.as_secs().max(2) as i64;
        let (state_tx, state) = watch::channel(RegistrationState::Connecting);
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(
            Session {
                cfg,
                key: key.clone(),
                value,
                ttl_secs,
            },
            state_tx,
            stop_rx,
        ));
        Ok(Self {
            key,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The etcd key this registration owns.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn state(&self) -> RegistrationState {
        *self.state.borrow()
    }

    /// Waits until the key is in etcd (or `timeout` passes); returns the lease id.
    pub async fn wait_registered(&mut self, timeout: Duration) -> Result<i64> {
        let wait = self
            .state
            .wait_for(|s| matches!(s, RegistrationState::Registered { .. }));
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => match *s {
                RegistrationState::Registered { lease } => Ok(lease),
                _ => Err(Error::Timeout("registration")),
            },
            _ => Err(Error::Timeout("registration")),
        }
    }

    /// Revokes the lease, deleting the key now (for SIGTERM). If etcd is unreachable the
    /// error is returned and the key still goes when the lease expires.
    pub async fn deregister(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Config(format!("registration task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Session {
    cfg: EtcdConfig,
    key: String,
    value: Vec<u8>,
    ttl_secs: i64,
}

/// Why one registered session ended.
enum Ended {
    /// Deregistration was requested; revoke this lease (if any) with this client.
    Stop(Option<Box<(Client, i64)>>),
    /// The handle was dropped: leave the lease to expire, as a crash would.
    Abandoned,
    Failed(Error),
}

async fn run(
    s: Session,
    state: watch::Sender<RegistrationState>,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let mut backoff = Backoff::default();
    // The newest lease we created: if a session fails, its key may still be in etcd under
    // it, so deregistration must revoke it even when we are between sessions.
    let mut last_lease: Option<i64> = None;
    loop {
        match session(&s, &state, &mut backoff, &mut stop, &mut last_lease).await {
            Ended::Stop(lease) => {
                let result = match (lease.map(|b| *b), last_lease) {
                    (Some((mut client, id)), _) => s
                        .cfg
                        .timed("lease revoke", client.lease_revoke(id))
                        .await
                        .map(drop),
                    (None, Some(id)) => revoke_fresh(&s, id).await,
                    (None, None) => Ok(()),
                };
                state.send_replace(RegistrationState::Stopped);
                return result;
            }
            Ended::Abandoned => return Ok(()),
            Ended::Failed(e) => {
                state.send_replace(RegistrationState::Connecting);
                tracing::warn!(key = %s.key, error = %e, "etcd registration lost; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    r = &mut stop => {
                        let result = match (r, last_lease) {
                            (Ok(()), Some(id)) => revoke_fresh(&s, id).await,
                            _ => Ok(()),
                        };
                        state.send_replace(RegistrationState::Stopped);
                        return result;
                    }
                }
            }
        }
    }
}

/// Revokes `lease` over a new connection (the session's client is gone).
async fn revoke_fresh(s: &Session, lease: i64) -> Result<()> {
    let mut client = s.cfg.connect().await?;
    match s
        .cfg
        .timed("lease revoke", client.lease_revoke(lease))
        .await
    {
        Ok(_) => Ok(()),
        // The server answered but refused (the lease already expired or was revoked): the
        // key is gone either way. Transport errors still surface.
        Err(Error::Etcd(etcd_client::Error::GRpcStatus(_))) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Connect, grant, put, then keep the lease alive until it fails or we are told to stop.
async fn session(
    s: &Session,
    state: &watch::Sender<RegistrationState>,
    backoff: &mut Backoff,
    stop: &mut oneshot::Receiver<()>,
    last_lease: &mut Option<i64>,
) -> Ended {
    let previous = *last_lease;
    let registered = tokio::select! {
        r = grant_and_put(s, last_lease) => r,
        r = &mut *stop => return if r.is_ok() { Ended::Stop(None) } else { Ended::Abandoned },
    };
    let (mut client, lease) = match registered {
        Ok(v) => v,
        Err(e) => return Ended::Failed(e),
    };
    // The key now hangs on the new lease; drop the old one so it does not linger.
    if let Some(old) = previous.filter(|old| *old != lease) {
        let _ = s.cfg.timed("lease revoke", client.lease_revoke(old)).await;
    }
    state.send_replace(RegistrationState::Registered { lease });
    backoff.reset();
    tracing::info!(key = %s.key, lease, ttl = s.ttl_secs, "registered in etcd");
    tokio::select! {
        e = keep_alive(s, client.clone(), lease) => Ended::Failed(e),
        r = &mut *stop => match r {
            Ok(()) => Ended::Stop(Some(Box::new((client, lease)))),
            Err(_) => Ended::Abandoned,
        },
    }
}

/// Records the lease in `last_lease` as soon as it exists: if we are stopped while the put
/// is in flight, the put may still land, and deregistration must revoke this lease.
async fn grant_and_put(s: &Session, last_lease: &mut Option<i64>) -> Result<(Client, i64)> {
    let mut client = s.cfg.connect().await?;
    let lease = s
        .cfg
        .timed("lease grant", client.lease_grant(s.ttl_secs, None))
        .await?
        .id();
    let previous = last_lease.replace(lease);
    let put = client.put(
        s.key.as_str(),
        s.value.clone(),
        Some(PutOptions::new().with_lease(lease)),
    );
    if let Err(e) = s.cfg.timed("put", put).await {
        // A failed put may still have landed: revoke the new lease (deleting the key if it
        // did) and keep tracking the previous one.
        let _ = s
            .cfg
            .timed("lease revoke", client.lease_revoke(lease))
            .await;
        *last_lease = previous;
        return Err(e);
    }
    Ok((client, lease))
}

/// Renews the lease every third of its TTL; returns the error that ended it.
async fn keep_alive(s: &Session, mut client: Client, lease: i64) -> Error {
    let (mut keeper, mut responses) = match s
        .cfg
        .timed("keep-alive", client.lease_keep_alive(lease))
        .await
    {
        Ok(v) => v,
        Err(e) => return e,
    };
    let period = Duration::from_secs(s.ttl_secs as u64) / 3;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = keeper.keep_alive().await {
            return e.into();
        }
        match tokio::time::timeout(s.cfg.request_timeout, responses.message()).await {
            Err(_) => return Error::Timeout("keep-alive"),
            Ok(Err(e)) => return e.into(),
            Ok(Ok(None)) => return Error::LeaseLost(lease),
            // etcd answers TTL 0 for a lease it no longer has (expired during an outage).
            Ok(Ok(Some(r))) if r.ttl() <= 0 => return Error::LeaseLost(lease),
            Ok(Ok(Some(_))) => {}
        }
    }
}
