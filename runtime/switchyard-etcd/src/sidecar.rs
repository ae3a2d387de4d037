//! `switchyard register`: registration for engines that can't register themselves.
//!
//! The sidecar polls the worker's health URL. While it answers 200 the instance is registered
//! (lease + keep-alive, as [`Registration`] does); after `unhealthy_after` failed checks in a
//! row the lease is revoked so frontends stop routing there at once, and it is registered again
//! when health returns. On shutdown (SIGTERM in the binary) it deregisters before returning.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use switchyard_runtime::InstanceSpec;

use crate::registration::DEFAULT_TTL;
use crate::{Error, EtcdConfig, Registration, Result};

/// What the sidecar registers and how it decides the worker is healthy.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    pub etcd: EtcdConfig,
    pub spec: InstanceSpec,
    /// `http://` URL answering 200 while the worker can serve (e.g. `<url>/health`).
    pub health_url: String,
    /// Time between health checks (also the per-check timeout).
    pub interval: Duration,
    /// Lease TTL.
    pub ttl: Duration,
    /// Consecutive failed checks before the registration is withdrawn (at least 1).
    pub unhealthy_after: u32,
}

impl SidecarConfig {
    pub fn new(etcd: EtcdConfig, spec: InstanceSpec, health_url: impl Into<String>) -> Self {
        Self {
            etcd,
            spec,
            health_url: health_url.into(),
            interval: Duration::from_secs(2),
            ttl: DEFAULT_TTL,
            unhealthy_after: 2,
        }
    }
}

/// Keeps `cfg.spec` registered while `cfg.health_url` is healthy, until `shutdown` resolves;
/// then deregisters and returns.
pub async fn run_sidecar(cfg: SidecarConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    cfg.etcd.validate()?;
    let uri: http::Uri = cfg
        .health_url
        .parse()
        .map_err(|e| Error::Config(format!("health URL {:?}: {e}", cfg.health_url)))?;
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut registration: Option<Registration> = None;
    let mut failures = 0u32;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut shutdown => break,
        }
        match check(&client, &uri, cfg.interval).await {
            Ok(()) => {
                failures = 0;
                if registration.is_none() {
                    tracing::info!(id = %cfg.spec.id, "worker healthy; registering");
                    registration = Some(Registration::spawn(
                        cfg.etcd.clone(),
                        cfg.spec.clone(),
                        cfg.ttl,
                    )?);
                }
            }
            Err(e) => {
                failures += 1;
                if failures >= cfg.unhealthy_after.max(1) {
                    if let Some(r) = registration.take() {
                        tracing::warn!(id = %cfg.spec.id, error = %e, "worker unhealthy; withdrawing registration");
                        if let Err(e) = r.deregister().await {
                            tracing::warn!(error = %e, "deregistration failed; the lease will expire");
                        }
                    }
                }
            }
        }
    }
    match registration {
        Some(r) => r.deregister().await,
        None => Ok(()),
    }
}

/// One health check: 200 within `timeout`, or why not.
async fn check(
    client: &Client<HttpConnector, Empty<Bytes>>,
    uri: &http::Uri,
    timeout: Duration,
) -> Result<()> {
    let resp = tokio::time::timeout(timeout, client.get(uri.clone()))
        .await
        .map_err(|_| Error::Health("timed out".into()))?
        .map_err(|e| Error::Health(e.to_string()))?;
    if resp.status() == http::StatusCode::OK {
        Ok(())
    } else {
        Err(Error::Health(format!("status {}", resp.status())))
    }
}
