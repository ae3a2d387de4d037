//! `switchyard serve`: assemble discovery, health, the app state and the server.

use std::future::Future;
use std::sync::Arc;

use std::time::Duration;
use switchyard_runtime::engine_load::spawn_scraper;
use switchyard_runtime::health::{spawn_canary, spawn_prober};
use switchyard_runtime::Registry;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::ServeConfig;
use crate::discovery;
use crate::plugins::record::Recorder;
use crate::plugins::{tasks, FileStamp, PluginSet, PluginSource};
use crate::server;

/// Runs the frontend on `listener` until `shutdown` resolves.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Template files are read here, once, from the operator's config; discovery only names them.
    let registry = Arc::new(
        Registry::new(config.template_catalog()?).with_worker_keys(config.discovery.worker_keys()?),
    );
    let plugins = Arc::new(start_plugins(&config, &registry).await?);
    let discovery_tasks = discovery::start(&config, &registry, &plugins).await?;
    let app = App::new(config, Arc::clone(&registry), Arc::clone(&plugins))?;
    // NATS events (KV index, worker load, replica sync) and the `kv` policy's overlap source;
    // stopped after the server has drained, so peers count our requests until they are done.
    let events = crate::events::start(&app).await?;
    // Plugins see the instances discovery already knows before the first request is decided:
    // the watch below runs on a task of its own, and on a loaded machine the first request
    // could otherwise reach a filter that had seen no instances yet (503 `filtered_out`).
    {
        let (set, reg) = (Arc::clone(&plugins), Arc::clone(&registry));
        let _ = tokio::task::spawn_blocking(move || set.refresh_topology(&reg)).await;
    }
    let plugin_tasks = [
        tasks::spawn_topology_watch(Arc::clone(&plugins), Arc::clone(&registry)),
        tasks::spawn_file_watch(Arc::clone(&plugins)),
        tasks::spawn_health_policies(
            Arc::clone(&plugins),
            Arc::clone(&registry),
            HEALTH_POLICY_PERIOD,
        ),
    ];
    let prober = spawn_prober(
        Arc::clone(&registry),
        app.client.clone(),
        app.config.reliability.probe.clone(),
    );
    let canary = spawn_canary(
        Arc::clone(&registry),
        app.client.clone(),
        app.config.reliability.canary.clone(),
    );
    let tenant_watch = crate::tenants::reload::spawn(Arc::clone(&app.tenants));
    let tenant_replicas =
        crate::tenants::replicas::spawn(Arc::clone(&app.tenants), app.bus.clone());
    let admin = crate::admin_listener::start(&app).await?;
    let flow_ticker = app.flow.spawn_ticker();
    let tls_watch = app.tls.as_ref().map(crate::tls::Tls::spawn_reload);
    let scraper = spawn_scraper(
        Arc::clone(&registry),
        app.client.clone(),
        app.config.events.load_scrape.clone(),
        Arc::clone(&app.metrics.scrapes),
    );
    let served_check = switchyard_runtime::served_models::spawn_checker(
        Arc::clone(&registry),
        app.client.clone(),
        app.config.reliability.served_model_check.clone(),
    );
    tracing::info!(
        listen = %listener.local_addr()?,
        instances = registry.all().len(),
        policy = %app.config.routing.default.policy,
        "switchyard frontend ready"
    );
    let served = server::serve(listener, Arc::clone(&app), shutdown).await;
    events.shutdown().await;
    // The drained requests' access-log lines reach stdout before the process ends.
    app.access_log.flush();
    crate::telemetry::otlp::shutdown().await;
    served?;
    if let Some(prober) = prober {
        prober.abort();
    }
    if let Some(canary) = canary {
        canary.abort();
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    served_check.iter().for_each(JoinHandle::abort);
    plugin_tasks.iter().for_each(JoinHandle::abort);
    tenant_watch.iter().for_each(JoinHandle::abort);
    tenant_replicas.iter().for_each(JoinHandle::abort);
    admin.iter().for_each(JoinHandle::abort);
    flow_ticker.iter().for_each(JoinHandle::abort);
    tls_watch.iter().for_each(JoinHandle::abort);
    discovery_tasks.iter().for_each(JoinHandle::abort);
    Ok(())
}

/// How often health-policy plugins get the latest observations.
const HEALTH_POLICY_PERIOD: Duration = Duration::from_millis(200);

/// Loads the configured plugins (compilation runs on blocking threads) before serving, so a
/// broken plugin stops start-up with a clear error instead of failing requests later.
async fn start_plugins(config: &ServeConfig, registry: &Registry) -> anyhow::Result<PluginSet> {
    let recorder = match &config.routing.record_decisions {
        Some(path) => Some(
            Recorder::open(path).map_err(|e| anyhow::anyhow!("--record-decisions {path}: {e}"))?,
        ),
        None => None,
    };
    let set = Arc::new(PluginSet::new(
        config.plugins.host.clone(),
        config.plugins.quarantine.clone(),
        recorder,
    ));
    set.refresh_topology(registry);
    for plugin in &config.plugins.modules {
        let Some(path) = plugin.path.clone() else {
            continue;
        };
        // Stat before reading: a change in between then shows as a newer stamp, and the
        // file watcher reloads it.
        let stamp = FileStamp::of(&path)
            .ok_or_else(|| anyhow::anyhow!("plugin `{}`: cannot stat {path}", plugin.name))?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| anyhow::anyhow!("plugin `{}`: cannot read {path}: {e}", plugin.name))?;
        set.load(plugin.clone(), bytes, PluginSource::File { path, stamp })
            .await
            .map_err(|e| anyhow::anyhow!("plugin `{}`: {e}", plugin.name))?;
    }
    Arc::try_unwrap(set).map_err(|_| anyhow::anyhow!("plugin set still shared during start-up"))
}

#[cfg(test)]
#[path = "serve_two_tests.rs"]
mod two_frontends_tests;
