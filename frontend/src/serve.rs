//! `switchyard serve`: assemble discovery, health, the app state and the server.

use std::future::Future;
use std::sync::Arc;

use switchyard_runtime::health::{spawn_canary, spawn_prober};
use switchyard_runtime::{DiscoveryEvent, Registry};
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{DiscoveryKind, ServeConfig};
use crate::server;

/// Runs the frontend on `listener` until `shutdown` resolves.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let registry = Arc::new(Registry::default());
    match config.discovery {
        DiscoveryKind::Static => {
            registry.apply(DiscoveryEvent::Snapshot(config.instance_specs()));
        }
        other => anyhow::bail!(
            "--discovery {other:?} is not available in this build yet; use static workers (--worker MODEL=URL)"
        ),
    }
    let app = App::new(config, Arc::clone(&registry))?;
    let prober = spawn_prober(
        Arc::clone(&registry),
        app.client.clone(),
        app.config.probe.clone(),
    );
    let canary = spawn_canary(
        Arc::clone(&registry),
        app.client.clone(),
        app.config.canary.clone(),
    );
    tracing::info!(
        listen = %listener.local_addr()?,
        instances = registry.all().len(),
        policy = %app.config.routing.policy,
        "switchyard frontend ready"
    );
    server::serve(listener, app, shutdown).await?;
    if let Some(prober) = prober {
        prober.abort();
    }
    if let Some(canary) = canary {
        canary.abort();
    }
    Ok(())
}
