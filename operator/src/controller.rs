//! Wiring: the two controllers, in one namespace or cluster-wide.

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use switchyard_k8s::{labels, RouterPlugin, WorkerPool};

use crate::{routerplugin, workerpool, Context};

/// Which namespaces the operator reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace (needs only a namespaced Role).
    Namespace(String),
    /// Every namespace (needs a ClusterRole).
    Cluster,
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::Cluster => Api::all(client.clone()),
    }
}

/// Runs both controllers until a shutdown signal.
pub async fn run(ctx: Arc<Context>, scope: Scope) {
    let client = ctx.client.clone();
    let managed = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::APP_MANAGED_BY,
        labels::FIELD_MANAGER
    ));
    let pools = Controller::new(
        api::<WorkerPool>(&client, &scope),
        watcher::Config::default().any_semantic(),
    )
    .owns(api::<Deployment>(&client, &scope), managed.clone())
    .owns(api::<Service>(&client, &scope), managed)
    // Ready endpoints feed the pool's status; slices carry the Service's labels.
    .watches(
        api::<EndpointSlice>(&client, &scope),
        watcher::Config::default().labels(labels::POOL),
        |slice| {
            let pool = slice.labels().get(labels::POOL)?.clone();
            Some(ObjectRef::<WorkerPool>::new(&pool).within(&slice.namespace()?))
        },
    )
    .shutdown_on_signal()
    .run(workerpool::reconcile, workerpool::error_policy, ctx.clone())
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => tracing::debug!(pool = %obj.name, "reconciled"),
            Err(e) => tracing::debug!(error = %e, "workerpool controller"),
        }
    });
    let plugins = Controller::new(
        api::<RouterPlugin>(&client, &scope),
        watcher::Config::default().any_semantic(),
    )
    .shutdown_on_signal()
    .run(routerplugin::reconcile, routerplugin::error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => tracing::debug!(plugin = %obj.name, "reconciled"),
            Err(e) => tracing::debug!(error = %e, "routerplugin controller"),
        }
    });
    futures_util::future::join(pools, plugins).await;
}
