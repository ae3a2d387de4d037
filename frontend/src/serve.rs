//! `switchyard serve`: build the frontend ([`crate::embed`], the one way it is assembled),
//! serve it on the listener until shutdown, then stop its background tasks.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::embed::Embedded;
use crate::server;

/// Runs the frontend on `listener` until `shutdown` resolves. `config` is validated (the
/// command line's `into_config` and `demo` validate it).
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let frontend = Embedded::assemble(config).await?;
    let app = Arc::clone(frontend.app());
    tracing::info!(
        listen = %listener.local_addr()?,
        instances = app.registry.all().len(),
        policy = %app.config.routing.default.policy,
        "switchyard frontend ready"
    );
    let served = server::serve(listener, app, shutdown).await;
    // Events stop only after the server has drained, so peers count our requests until
    // they are done.
    frontend.shutdown().await;
    crate::telemetry::otlp::shutdown().await;
    served?;
    Ok(())
}

#[cfg(test)]
#[path = "serve_two_tests.rs"]
mod two_frontends_tests;
