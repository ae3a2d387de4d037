//! Building the frontend in-process: from a YAML string or a [`ServeConfig`] to a running
//! [`App`] with its background tasks, and the [`Frontend`] service that serves it.
//!
//! This is the one way an `App` is assembled: `switchyard serve` ([`crate::serve`]) builds
//! through it too, then puts the app behind its own listener. An embedder puts
//! [`Embedded::service`] in its own server instead (`frontend/examples/embed.rs`); the
//! process-wide parts stay the embedder's: logging and trace export (see
//! [`crate::telemetry::subscriber`]), signals, and the listener with its connection limits
//! and TLS (`http.limits` connection caps, `http.tls` and the graceful drain apply to the
//! product's own listener only).

use std::sync::Arc;
use std::time::Duration;

use switchyard_runtime::engine_load::spawn_scraper;
use switchyard_runtime::health::{spawn_canary, spawn_prober};
use switchyard_runtime::Registry;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::ServeConfig;
use crate::discovery;
use crate::events::Events;
use crate::plugins::record::Recorder;
use crate::plugins::{tasks, FileStamp, PluginSet, PluginSource};
use crate::service::Frontend;

/// How often health-policy plugins get the latest observations.
const HEALTH_POLICY_PERIOD: Duration = Duration::from_millis(200);

/// A frontend built in this process, its background tasks running: discovery, health
/// probes and canaries, load scraping, NATS events, plugin watches, tenant reloads and the
/// admin listener (when an admin token is configured). Keep it while serving: dropping it
/// stops the tasks; [`Embedded::shutdown`] stops them gracefully.
pub struct Embedded {
    app: Arc<App>,
    events: Option<Events>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// Parses and validates `yaml` (the `switchyard serve --config` schema, docs/configuration.md)
    /// and starts the frontend it describes.
    pub async fn from_yaml(yaml: &str) -> anyhow::Result<Self> {
        let config = ServeConfig::from_yaml(yaml).map_err(anyhow::Error::msg)?;
        Self::start(config).await
    }

    /// Validates `config` and starts the frontend it describes.
    pub async fn start(config: ServeConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Self::assemble(config).await
    }

    /// The frontend as a tower service (cheap to clone, one per server or route).
    pub fn service(&self) -> Frontend {
        Frontend::new(Arc::clone(&self.app))
    }

    /// The state requests are served from.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops the background tasks after the server has drained: peer frontends (NATS) are
    /// told to stop counting this one's requests, and the access log is flushed.
    pub async fn shutdown(mut self) {
        if let Some(events) = self.events.take() {
            events.shutdown().await;
        }
        // The drained requests' access-log lines reach stdout before the process ends.
        self.app.access_log.flush();
        // Dropping `self` aborts the remaining tasks.
    }

    /// Builds the app from a validated `config` and starts its background tasks.
    pub(crate) async fn assemble(config: ServeConfig) -> anyhow::Result<Self> {
        // Template files are read here, once, from the operator's config; discovery only
        // names them.
        let registry = Arc::new(
            Registry::new(config.template_catalog()?)
                .with_worker_keys(config.discovery.worker_keys()?),
        );
        let plugins = Arc::new(start_plugins(&config, &registry).await?);
        let discovery = discovery::start(&config, &registry, &plugins).await?;
        let app = App::new(config, Arc::clone(&registry), Arc::clone(&plugins));
        // From here on a failed start drops `embedded`, which stops what already runs.
        let mut embedded = Self {
            app: app.inspect_err(|_| discovery.iter().for_each(JoinHandle::abort))?,
            events: None,
            tasks: discovery,
        };
        // NATS events (KV index, worker load, replica sync) and the `kv` policy's overlap
        // source; stopped after the server has drained, so peers count our requests until
        // they are done.
        embedded.events = Some(crate::events::start(&embedded.app).await?);
        // Plugins see the instances discovery already knows before the first request is
        // decided: the watch below runs on a task of its own, and on a loaded machine the
        // first request could otherwise reach a filter that had seen no instances yet (503
        // `filtered_out`).
        {
            let (set, reg) = (Arc::clone(&plugins), Arc::clone(&registry));
            let _ = tokio::task::spawn_blocking(move || set.refresh_topology(&reg)).await;
        }
        let app = Arc::clone(&embedded.app);
        embedded.tasks.extend(spawn_tasks(&app, &plugins));
        embedded
            .tasks
            .extend(crate::admin_listener::start(&app).await?);
        Ok(embedded)
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// Starts the tasks that keep the app's view fresh: plugin watches, health probe and canary,
/// tenant reloads and replica counts, flow control's ticker, TLS reloads, load scraping and
/// the served-model check. Each returns nothing when its feature is off.
fn spawn_tasks(app: &Arc<App>, plugins: &Arc<PluginSet>) -> Vec<JoinHandle<()>> {
    let (registry, client) = (&app.registry, &app.client);
    let reliability = &app.config.reliability;
    let mut tasks = vec![
        tasks::spawn_topology_watch(Arc::clone(plugins), Arc::clone(registry)),
        tasks::spawn_file_watch(Arc::clone(plugins)),
        tasks::spawn_health_policies(
            Arc::clone(plugins),
            Arc::clone(registry),
            HEALTH_POLICY_PERIOD,
        ),
    ];
    let optional = [
        spawn_prober(
            Arc::clone(registry),
            client.clone(),
            reliability.probe.clone(),
        ),
        spawn_canary(
            Arc::clone(registry),
            client.clone(),
            reliability.canary.clone(),
        ),
        crate::tenants::reload::spawn(Arc::clone(&app.tenants)),
        crate::tenants::replicas::spawn(Arc::clone(&app.tenants), app.bus.clone()),
        app.flow.spawn_ticker(),
        app.tls.as_ref().map(crate::tls::Tls::spawn_reload),
        spawn_scraper(
            Arc::clone(registry),
            client.clone(),
            app.config.events.load_scrape.clone(),
            Arc::clone(&app.metrics.scrapes),
        ),
        switchyard_runtime::served_models::spawn_checker(
            Arc::clone(registry),
            client.clone(),
            reliability.served_model_check.clone(),
        ),
    ];
    tasks.extend(optional.into_iter().flatten());
    tasks
}

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
mod tests {
    use super::*;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn from_yaml_refuses_what_serve_refuses_naming_the_key() {
        let typo = Embedded::from_yaml("workers: []\nrouting:\n  polcy: kv\n").await;
        let message = typo.map(|_| ()).unwrap_err().to_string();
        assert!(message.contains("routing.polcy"), "{message}");
        let none = Embedded::from_yaml("").await.map(|_| ()).unwrap_err();
        assert!(none.to_string().contains("`workers`"), "{none}");
    }

    #[tokio::test]
    async fn from_yaml_serves_the_configured_models_through_its_service() {
        let yaml = "workers:\n  - { model: m, url: \"http://127.0.0.1:9\" }\n";
        let embedded = Embedded::from_yaml(yaml).await.unwrap();
        assert_eq!(embedded.app().registry.all().len(), 1);
        let request = Request::get("/live").body(String::new()).unwrap();
        let response = embedded.service().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        embedded.shutdown().await;
    }
}
