//! Wiring: the two controllers, once per watched namespace or once cluster-wide.
//!
//! A kube `Controller` watches through one `Api`, and an `Api` is one namespace or all of them,
//! so a namespace list runs one pair of controllers per namespace (each needs only a Role
//! there). They share the [`Context`]: metrics, backoff and the validator.

use std::sync::Arc;

use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, ResourceExt};
use switchyard_k8s::{labels, RouterPlugin, WatchScope, WorkerPool};

use crate::{plugin_sources, routerplugin, workerpool, Context};

/// Runs both controllers in every namespace of `scope` until a shutdown signal.
pub async fn run(ctx: Arc<Context>, scope: WatchScope) {
    let client = ctx.client.clone();
    let pools = scope
        .apis::<WorkerPool>(&client)
        .into_iter()
        .map(|api| FutureExt::boxed(run_pools(api, ctx.clone())));
    let plugins = scope
        .apis::<RouterPlugin>(&client)
        .into_iter()
        .map(|api| FutureExt::boxed(run_plugins(api, ctx.clone())));
    join_all(pools.chain(plugins)).await;
}

/// The WorkerPool controller over `api`'s namespace (or all).
pub async fn run_pools(api: Api<WorkerPool>, ctx: Arc<Context>) {
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

/// The RouterPlugin controller over `api`'s namespace (or all), re-run for a plugin whenever
/// the ConfigMap holding its component changes.
pub async fn run_plugins(api: Api<RouterPlugin>, ctx: Arc<Context>) {
    plugin_controller(api, &ctx)
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

/// The RouterPlugin controller before `run`, so tests can drive it on a mocked API.
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
