//! Wiring: the two controllers, once per watched namespace or once cluster-wide.
//!
//! A kube `Controller` watches through one `Api`, and an `Api` is one namespace or all of them,
//! so a namespace list runs one pair of controllers per namespace (each needs only a Role
//! there). They share the [`Context`]: metrics, backoff and the validator.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::{join_all, select, Either};
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::{Api, ResourceExt};
use switchyard_k8s::{labels, LoraAdapter, RouterPlugin, WatchScope, WorkerPool};

use crate::server::Readiness;
use crate::{loraadapter, plugin_sources, routerplugin, workerpool, Context};

/// Runs both controllers in every namespace of `scope` until a shutdown signal; sets `ready`
/// once every controller's primary watch (WorkerPools, RouterPlugins) has completed its first
/// list, i.e. the controllers see the cluster and are reconciling.
pub async fn run(ctx: Arc<Context>, scope: WatchScope, ready: Arc<Readiness>) {
    let client = ctx.client.clone();
    let pools = scope.apis::<WorkerPool>(&client);
    let plugins = scope.apis::<RouterPlugin>(&client);
    let unlisted = Arc::new(AtomicUsize::new(pools.len() + plugins.len()));
    if pools.is_empty() && plugins.is_empty() {
        ready.set(true);
    }
    let on_listed = move || {
        let (unlisted, ready) = (unlisted.clone(), ready.clone());
        move || {
            if unlisted.fetch_sub(1, Ordering::AcqRel) == 1 {
                ready.set(true);
                tracing::info!("every watch has listed; ready");
            }
        }
    };
    let mut runs = Vec::new();
    for api in pools {
        let controller = pool_controller(api, &ctx);
        let store = controller.store();
        ctx.pool_claims.add(store.clone());
        runs.push(running(run_pools(controller, ctx.clone()), store, on_listed()).boxed());
    }
    for api in plugins {
        let controller = plugin_controller(api, &ctx);
        let store = controller.store();
        runs.push(running(run_plugins(controller, ctx.clone()), store, on_listed()).boxed());
    }
    // Not part of readiness: WorkerPools and RouterPlugins work without the LoraAdapter CRD.
    for api in scope.apis::<LoraAdapter>(&client) {
        runs.push(run_adapters(adapter_controller(api, &ctx), ctx.clone()).boxed());
    }
    join_all(runs).await;
}

/// Drives a controller's `run` future and calls `on_listed` once its `store` has been filled by
/// the primary watch's first list.
///
/// Both are polled in one task on purpose: kube's store-ready signal keeps a single waker, and
/// the controller's runner waits on it too — a waiter in another task would take the wakeup
/// from the runner and stall it.
pub async fn running<K>(run: impl Future<Output = ()>, store: Store<K>, on_listed: impl FnOnce())
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let listed = async move {
        if store.wait_until_ready().await.is_ok() {
            on_listed();
        }
    };
    // Ends with `run` (a controller shut down before its first list must not hang here).
    let (run, listed) = (std::pin::pin!(run), std::pin::pin!(listed));
    if let Either::Right(((), run)) = select(run, listed).await {
        run.await;
    }
}

/// The WorkerPool controller over `api`'s namespace (or all), before `run`.
pub fn pool_controller(api: Api<WorkerPool>, ctx: &Context) -> Controller<WorkerPool> {
    let client = ctx.client.clone();
    let scoped = |ns: Option<&str>| -> (Api<Deployment>, Api<Service>, Api<EndpointSlice>) {
        match ns {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        }
    };
    let (deployments, services, slices) = scoped(api.namespace());
    let managed = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::APP_MANAGED_BY,
        labels::FIELD_MANAGER
    ));
    Controller::new(api, watcher::Config::default().any_semantic())
        .owns(deployments, managed.clone())
        .owns(services, managed)
        // Ready endpoints feed the pool's status; slices carry the Service's labels.
        .watches(
            slices,
            watcher::Config::default().labels(labels::POOL),
            |slice| {
                let pool = slice.labels().get(labels::POOL)?.clone();
                Some(ObjectRef::<WorkerPool>::new(&pool).within(&slice.namespace()?))
            },
        )
}

async fn run_pools(controller: Controller<WorkerPool>, ctx: Arc<Context>) {
    controller
        .shutdown_on_signal()
        .run(workerpool::reconcile, workerpool::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(pool = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "workerpool controller"),
            }
        })
        .await;
}

/// The RouterPlugin controller, re-run for a plugin whenever the ConfigMap holding its
/// component changes.
async fn run_plugins(controller: Controller<RouterPlugin>, ctx: Arc<Context>) {
    controller
        .shutdown_on_signal()
        .run(routerplugin::reconcile, routerplugin::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(plugin = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "routerplugin controller"),
            }
        })
        .await;
}

/// The RouterPlugin controller over `api`'s namespace (or all), before `run`, so tests can
/// drive it on a mocked API.
///
/// ConfigMaps are not owned by their plugins (users create them, several plugins may share
/// one), so `owns` does not fit: a metadata-only watch (component bytes stay out of memory)
/// maps each ConfigMap change to the plugins in the controller's own store that name it.
pub fn plugin_controller(api: Api<RouterPlugin>, ctx: &Context) -> Controller<RouterPlugin> {
    let config_maps: Api<PartialObjectMeta<ConfigMap>> = match api.namespace() {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let plugins = controller.store();
    controller.watches(config_maps, watcher::Config::default(), move |cm| {
        let namespace = cm.namespace().unwrap_or_default();
        plugin_sources::referencing(&plugins.state(), &namespace, &cm.name_any())
    })
}

/// The LoraAdapter controller over `api`'s namespace (or all), before `run`: re-run for the
/// adapters of a model whenever one of its WorkerPools changes (new ready endpoints).
pub fn adapter_controller(api: Api<LoraAdapter>, ctx: &Context) -> Controller<LoraAdapter> {
    let pools: Api<WorkerPool> = match api.namespace() {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let adapters = controller.store();
    controller.watches(pools, watcher::Config::default(), move |pool| {
        let namespace = pool.namespace().unwrap_or_default();
        adapters
            .state()
            .iter()
            .filter(|a| {
                a.namespace().as_deref() == Some(namespace.as_str())
                    && a.spec.base_model == pool.spec.model
            })
            .map(|a| ObjectRef::from_obj(&**a))
            .collect::<Vec<_>>()
    })
}

async fn run_adapters(controller: Controller<LoraAdapter>, ctx: Arc<Context>) {
    controller
        .shutdown_on_signal()
        .run(loraadapter::reconcile, loraadapter::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(adapter = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "loraadapter controller"),
            }
        })
        .await;
}
