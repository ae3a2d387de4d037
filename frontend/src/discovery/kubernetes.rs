//! `--discovery kubernetes`: instances from WorkerPools and their EndpointSlices, plugins from
//! validated RouterPlugins, loaded and swapped with the same atomic swap as the admin API.
//!
//! A RouterPlugin's `appliesTo.pools` resolves to the models those pools serve (a request is
//! for one model; pools are how a cluster names groups of models), so the plugin set follows
//! the WorkerPools too: a plugin is (re)installed when its pools' models change, and not
//! installed while its pools serve no model.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use switchyard_k8s::instances::PoolModels;
use switchyard_k8s::plugins::{PluginArtifact, PluginEvent};
use switchyard_plugin_host::{PluginKind, PluginLimits};
use switchyard_runtime::Registry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::ServeConfig;
use crate::plugins::{PluginConfig, PluginSet, PluginSource};

/// Starts instance and plugin discovery; returns the tasks to abort on shutdown.
pub(super) async fn start(
    config: &ServeConfig,
    registry: &Arc<Registry>,
    plugins: &Arc<PluginSet>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("--discovery kubernetes: no usable cluster credentials: {e}")
    })?;
    // `a,b` watches those namespaces (a Role in each suffices); unset or empty, every namespace.
    let scope = switchyard_k8s::WatchScope::parse(
        config
            .discovery
            .kubernetes
            .namespace
            .as_deref()
            .unwrap_or_default(),
    );
    tracing::info!(?scope, "kubernetes discovery");
    let (tx, rx) = mpsc::unbounded_channel();
    let (pools_tx, pools_rx) = watch::channel(PoolModels::new());
    let adapters = {
        let (client, scope, pools, tx) =
            (client.clone(), scope.clone(), pools_rx.clone(), tx.clone());
        tokio::spawn(async move {
            let run = switchyard_k8s::adapters::run_adapter_discovery(client, scope, pools, tx);
            if let Err(error) = run.await {
                tracing::error!(%error, "kubernetes adapter discovery stopped");
            }
        })
    };
    let instances = {
        let (client, scope) = (client.clone(), scope.clone());
        let owners = config.discovery.kubernetes.model_owners.clone();
        tokio::spawn(async move {
            if let Err(error) =
                switchyard_k8s::discovery::run_discovery(client, scope, owners, tx, pools_tx).await
            {
                tracing::error!(%error, "kubernetes instance discovery stopped");
            }
        })
    };
    let fetcher = switchyard_k8s::source::SourceFetcher::new(
        client.clone(),
        Arc::new(switchyard_k8s::source::HttpFetcher::new()?),
    );
    let (ptx, prx) = mpsc::unbounded_channel();
    let plugin_watch = tokio::spawn(async move {
        if let Err(error) =
            switchyard_k8s::plugins::run_plugin_discovery(client, scope, fetcher, ptx).await
        {
            tracing::error!(%error, "kubernetes plugin discovery stopped");
        }
    });
    Ok(vec![
        instances,
        adapters,
        super::apply(registry, "kubernetes", rx),
        plugin_watch,
        apply_plugins(
            plugins,
            prx,
            pools_rx,
            config.discovery.kubernetes.cross_namespace_plugins,
        ),
    ])
}

/// A change to make to the plugin set.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Load (or atomically replace) a plugin.
    Load(PluginConfig, Bytes),
    /// Remove a plugin by name.
    Unload(String),
}

/// What the frontend runs for each RouterPlugin, and for which models.
#[derive(Debug, Default)]
struct KubePlugins {
    /// The latest artifact of each RouterPlugin, by frontend plugin name.
    artifacts: BTreeMap<String, PluginArtifact>,
    /// Plugins handed to the plugin set: the models each was installed for (`None`: all)
    /// and whether that install succeeded (a failed one keeps its previous version running
    /// and is tried again on the next change).
    installed: BTreeMap<String, (Option<Vec<String>>, bool)>,
    /// The model of every routable WorkerPool.
    pools: PoolModels,
    /// `kubernetes.cross_namespace_plugins`: plugins may reach other namespaces' models.
    cross_namespace: bool,
}

impl KubePlugins {
    fn on_plugin(&mut self, event: PluginEvent) -> Vec<Step> {
        match event {
            PluginEvent::Upsert(artifact) => {
                let name = plugin_name(&artifact.namespace, &artifact.name);
                self.artifacts.insert(name.clone(), artifact);
                self.resolve(&name, true).into_iter().collect()
            }
            PluginEvent::Remove { namespace, name } => {
                let name = plugin_name(&namespace, &name);
                self.artifacts.remove(&name);
                self.installed
                    .remove(&name)
                    .map(|_| Step::Unload(name))
                    .into_iter()
                    .collect()
            }
            PluginEvent::State(state) => {
                tracing::info!(?state, "RouterPlugin watch");
                Vec::new()
            }
        }
    }

    fn on_pools(&mut self, pools: PoolModels) -> Vec<Step> {
        self.pools = pools;
        let names: Vec<String> = self.artifacts.keys().cloned().collect();
        names
            .iter()
            .filter_map(|name| self.resolve(name, false))
            .collect()
    }

    /// The step that makes plugin `name` run on the models it applies to now; `new_artifact`
    /// reloads it even when those are unchanged.
    fn resolve(&mut self, name: &str, new_artifact: bool) -> Option<Step> {
        let artifact = self.artifacts.get(name)?;
        let models =
            artifact
                .applies_to
                .models(&artifact.namespace, &self.pools, self.cross_namespace);
        if models.as_ref().is_some_and(Vec::is_empty) {
            // Its pools serve no model (yet): running it would mean running it everywhere.
            return self
                .installed
                .remove(name)
                .map(|_| Step::Unload(name.to_owned()));
        }
        let current = self.installed.get(name);
        if !new_artifact && current == Some(&(models.clone(), true)) {
            return None;
        }
        let config = plugin_config(
            name.to_owned(),
            artifact,
            models.clone().unwrap_or_default(),
        );
        let bytes = artifact.bytes.clone();
        self.installed.insert(name.to_owned(), (models, true));
        Some(Step::Load(config, bytes))
    }

    /// Notes that loading `name` failed; its previous version (if any) keeps running.
    fn load_failed(&mut self, name: &str) {
        if let Some(entry) = self.installed.get_mut(name) {
            entry.1 = false;
        }
    }
}

/// Loads, swaps and removes plugins as validated `RouterPlugin`s and the pools they apply to
/// change.
fn apply_plugins(
    plugins: &Arc<PluginSet>,
    mut rx: mpsc::UnboundedReceiver<PluginEvent>,
    mut pools: watch::Receiver<PoolModels>,
    cross_namespace: bool,
) -> JoinHandle<()> {
    let plugins = Arc::clone(plugins);
    tokio::spawn(async move {
        let mut state = KubePlugins {
            cross_namespace,
            ..KubePlugins::default()
        };
        let mut pools_open = true;
        loop {
            let steps = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => state.on_plugin(event),
                    None => return,
                },
                changed = pools.changed(), if pools_open => match changed {
                    Ok(()) => {
                        let models = pools.borrow_and_update().clone();
                        state.on_pools(models)
                    }
                    // Instance discovery stopped; plugins keep their last scope.
                    Err(_) => {
                        pools_open = false;
                        Vec::new()
                    }
                },
            };
            for step in steps {
                match step {
                    Step::Load(config, bytes) => {
                        let name = config.name.clone();
                        let loaded = plugins
                            .load(config, bytes.to_vec(), PluginSource::Kubernetes)
                            .await;
                        if let Err(error) = loaded {
                            tracing::error!(plugin = name, %error, "RouterPlugin could not be loaded; keeping the previous version");
                            state.load_failed(&name);
                        }
                    }
                    Step::Unload(name) => {
                        plugins.remove(&name).await;
                    }
                }
            }
        }
    })
}

fn plugin_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// A `RouterPlugin` as the frontend's plugin settings, applying to `models` (empty: all).
fn plugin_config(name: String, a: &PluginArtifact, models: Vec<String>) -> PluginConfig {
    use switchyard_k8s::routerplugin as crd;
    let defaults = PluginLimits::default();
    PluginConfig {
        name,
        kind: match a.kind {
            crd::PluginKind::Filter => PluginKind::Filter,
            crd::PluginKind::Scorer => PluginKind::Scorer,
            crd::PluginKind::Picker => PluginKind::Picker,
            crd::PluginKind::Health => PluginKind::HealthPolicy,
        },
        path: None,
        weight: a.weight,
        order: a.order,
        config: a.config.clone().unwrap_or_else(|| serde_json::json!({})),
        failure_policy: a.failure_policy,
        mode: a.mode,
        models,
        limits: PluginLimits {
            memory_bytes: u64::try_from(a.limits.memory_mib).unwrap_or(64).max(1) << 20,
            decision_budget: std::time::Duration::from_micros(
                u64::try_from(a.limits.decision_budget_micros).unwrap_or(10_000),
            ),
            ..defaults
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{FailurePolicy, PluginMode};
    use switchyard_k8s::routerplugin as crd;

    fn artifact(pools: &[&str], models: &[&str]) -> PluginArtifact {
        PluginArtifact {
            namespace: "ns".into(),
            name: "ll".into(),
            kind: crd::PluginKind::Health,
            bytes: bytes::Bytes::from_static(b"\0asm"),
            sha256: "0".repeat(64),
            config: Some(serde_json::json!({"threshold": 2})),
            weight: 2.5,
            order: 3,
            failure_policy: crd::FailurePolicy::FailClosed,
            limits: crd::PluginLimits {
                memory_mib: 32,
                decision_budget_micros: 1500,
            },
            mode: crd::PluginMode::Shadow,
            applies_to: crd::AppliesTo {
                pools: pools.iter().map(|s| s.to_string()).collect(),
                models: models.iter().map(|s| s.to_string()).collect(),
            },
            generation: Some(4),
        }
    }

    fn pools(entries: &[(&str, &str, &str)]) -> PoolModels {
        entries
            .iter()
            .map(|(ns, pool, model)| ((ns.to_string(), pool.to_string()), model.to_string()))
            .collect()
    }

    /// The models of the one `Load` in `steps`.
    fn loaded_models(steps: &[Step]) -> Vec<String> {
        match steps {
            [Step::Load(config, _)] => config.models.clone(),
            other => panic!("expected one load, got {other:?}"),
        }
    }

    #[test]
    fn a_router_plugin_maps_onto_plugin_settings() {
        let artifact = artifact(&[], &["m"]);
        let mut state = KubePlugins {
            cross_namespace: true,
            ..KubePlugins::default()
        };
        let steps = state.on_plugin(PluginEvent::Upsert(artifact));
        let [Step::Load(c, bytes)] = steps.as_slice() else {
            panic!("expected a load, got {steps:?}")
        };
        assert_eq!(&bytes[..], b"\0asm");
        assert_eq!(c.name, "ns.ll");
        assert_eq!(c.kind, PluginKind::HealthPolicy);
        assert_eq!(c.failure_policy, FailurePolicy::FailClosed);
        assert_eq!(c.mode, PluginMode::Shadow);
        assert_eq!(c.weight, 2.5);
        assert_eq!(c.order, 3);
        assert_eq!(c.limits.memory_bytes, 32 << 20);
        assert_eq!(
            c.limits.decision_budget,
            std::time::Duration::from_micros(1500)
        );
        assert_eq!(c.models, vec!["m".to_owned()]);
        assert_eq!(c.config["threshold"], 2);
        c.validate().unwrap();
        assert!(
            state.on_pools(pools(&[("ns", "p", "x")])).is_empty(),
            "a plugin without pools ignores pool changes"
        );
    }

    #[test]
    fn a_plugin_for_pools_runs_on_the_models_they_serve() {
        let mut state = KubePlugins::default();
        // The plugin arrives before instance discovery has listed the pools: not installed
        // (an empty model list would mean every model).
        assert!(state
            .on_plugin(PluginEvent::Upsert(artifact(&["llama", "qwen"], &[])))
            .is_empty());

        let steps = state.on_pools(pools(&[
            ("ns", "llama", "meta/llama"),
            ("other", "qwen", "q"),
        ]));
        assert_eq!(
            loaded_models(&steps),
            ["meta/llama"],
            "only pools in the plugin's namespace"
        );
        assert!(
            state
                .on_pools(pools(&[
                    ("ns", "llama", "meta/llama"),
                    ("ns", "mistral", "m")
                ]))
                .is_empty(),
            "an unrelated pool changes nothing"
        );

        let steps = state.on_pools(pools(&[("ns", "llama", "meta/llama"), ("ns", "qwen", "q")]));
        assert_eq!(loaded_models(&steps), ["meta/llama", "q"]);

        // Its pools go away: the plugin stops, rather than applying to everything.
        assert_eq!(
            state.on_pools(pools(&[("ns", "mistral", "m")])),
            vec![Step::Unload("ns.ll".into())]
        );
        let steps = state.on_pools(pools(&[("ns", "qwen", "q")]));
        assert_eq!(loaded_models(&steps), ["q"]);

        // Deleting the RouterPlugin unloads it; later pool changes do not bring it back.
        assert_eq!(
            state.on_plugin(PluginEvent::Remove {
                namespace: "ns".into(),
                name: "ll".into()
            }),
            vec![Step::Unload("ns.ll".into())]
        );
        assert!(state.on_pools(pools(&[("ns", "llama", "l")])).is_empty());
    }

    #[test]
    fn an_unscoped_plugin_reaches_only_its_own_namespaces_models() {
        let mut state = KubePlugins::default();
        state.on_pools(pools(&[("ns", "a", "mine"), ("other", "b", "theirs")]));
        let steps = state.on_plugin(PluginEvent::Upsert(artifact(&[], &[])));
        assert_eq!(loaded_models(&steps), ["mine"]);
        // Naming another tenant's model does not reach it either.
        let steps = state.on_plugin(PluginEvent::Upsert(artifact(&[], &["theirs"])));
        assert_eq!(steps, vec![Step::Unload("ns.ll".into())]);
    }

    #[test]
    fn pools_and_models_both_narrow_the_scope() {
        let mut state = KubePlugins::default();
        state.on_pools(pools(&[("ns", "a", "m1"), ("ns", "b", "m2")]));
        let steps = state.on_plugin(PluginEvent::Upsert(artifact(&["a", "b"], &["m2"])));
        assert_eq!(loaded_models(&steps), ["m2"]);
    }

    #[test]
    fn a_failed_load_is_retried_on_the_next_change() {
        let mut state = KubePlugins::default();
        state.on_pools(pools(&[("ns", "a", "m1")]));
        let steps = state.on_plugin(PluginEvent::Upsert(artifact(&["a"], &[])));
        assert_eq!(loaded_models(&steps), ["m1"]);
        state.load_failed("ns.ll");
        let steps = state.on_pools(pools(&[("ns", "a", "m1"), ("ns", "z", "m9")]));
        assert_eq!(
            loaded_models(&steps),
            ["m1"],
            "same scope, but the last load failed"
        );
    }
}
