//! LoRA adapters for the frontend's Kubernetes discovery: `LoraAdapter` resources in the
//! watched namespaces, reported as one `DiscoveryEvent::Adapters` whenever the set changes.
//!
//! Namespace-scoped like models: an adapter is declared only while a WorkerPool *of its own
//! namespace* that owns its base model ([`crate::ownership`]) serves it, so one tenant cannot
//! attach an adapter name to another tenant's model. Two namespaces declaring the same adapter
//! name: the older resource wins. A failing watch keeps the last set (fail-static) and retries
//! with backoff; it never touches the instance set's connection state.

use std::collections::HashMap;

use futures_util::{stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use switchyard_runtime::lora::{check_adapter, AdapterSpec};
use switchyard_runtime::DiscoveryEvent;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::discovery::{keyed, Listing};
use crate::instances::{InstanceIndex, Key, PoolModels};
use crate::loraadapter::{LoraAdapter, LoraAdapterSpec};
use crate::scope::WatchScope;
use crate::Result;

/// A listed adapter: its spec and creation time.
pub type AdapterObject = (LoraAdapterSpec, Option<Timestamp>);

/// Watches LoraAdapters in `scope` and sends the declared set to `tx` (first when non-empty,
/// then on every change of the adapters or of `pools`) until the receiver is dropped.
///
/// Needs `list`/`watch` on `loraadapters.switchyard.dev` in every watched namespace.
pub async fn run_adapter_discovery(
    client: Client,
    scope: WatchScope,
    mut pools: watch::Receiver<PoolModels>,
    tx: UnboundedSender<DiscoveryEvent>,
) -> Result<()> {
    let watches = scope
        .apis::<LoraAdapter>(&client)
        .into_iter()
        .enumerate()
        .map(|(i, api)| {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |e| (i, e))
                .boxed()
        });
    let mut updates = stream::select_all(watches);
    let mut listings: Vec<Listing<AdapterObject>> =
        scope.watches().into_iter().map(Listing::new).collect();
    let mut live: HashMap<Key, AdapterObject> = HashMap::new();
    let mut sent: Vec<AdapterSpec> = Vec::new();
    loop {
        tokio::select! {
            update = updates.next() => match update {
                None => return Ok(()),
                Some((i, Ok(event))) => {
                    let event = keyed(event, |a: LoraAdapter| {
                        let created = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                        (InstanceIndex::key_of(&a), (a.spec, created))
                    });
                    if let Some(listing) = listings.get_mut(i) {
                        listing.apply(event, &mut live);
                    }
                }
                Some((_, Err(error))) => {
                    tracing::warn!(%error, "LoraAdapter watch failed; keeping the last known adapters");
                    continue;
                }
            },
            changed = pools.changed() => if changed.is_err() { return Ok(()) },
        }
        if !listings.iter().all(|l| l.listed) {
            continue;
        }
        let now = declared(&live, &pools.borrow());
        if now != sent {
            sent.clone_from(&now);
            if tx.send(DiscoveryEvent::Adapters(now)).is_err() {
                return Ok(());
            }
        }
    }
}

/// The adapters to route: those whose namespace has a (model-owning) pool serving their base
/// model, checked like every discovery input, oldest first (so on a name clash the older one
/// is kept). The adapter's name is the resource's name.
pub fn declared(adapters: &HashMap<Key, AdapterObject>, pools: &PoolModels) -> Vec<AdapterSpec> {
    let mut found: Vec<(&Key, &AdapterObject)> = adapters
        .iter()
        .filter(|((ns, _), (spec, _))| {
            pools
                .iter()
                .any(|((pool_ns, _), model)| pool_ns == ns && *model == spec.base_model)
        })
        .collect();
    found.sort_by_key(|(key, (_, created))| (created.is_none(), *created, *key));
    found
        .into_iter()
        .filter_map(|((ns, name), (spec, _))| {
            let adapter = AdapterSpec {
                name: name.clone(),
                base_model: spec.base_model.clone(),
                source: spec.source.clone(),
                on_demand: false,
            };
            match check_adapter(&adapter) {
                Ok(()) => Some(adapter),
                Err(rejection) => {
                    tracing::warn!(namespace = %ns, error = %rejection.message, "LoraAdapter ignored");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(base: &str, secs: i64) -> AdapterObject {
        let spec = LoraAdapterSpec {
            base_model: base.into(),
            source: "s3://a".into(),
            pools: Vec::new(),
            min_replicas: 1,
        };
        (spec, Timestamp::from_second(secs).ok())
    }

    fn key(ns: &str, name: &str) -> Key {
        (ns.into(), name.into())
    }

    #[test]
    fn adapters_are_declared_only_for_models_their_own_namespace_serves() {
        let pools: PoolModels = [
            (key("team-a", "llama"), "llama".to_owned()),
            (key("team-b", "qwen"), "qwen".to_owned()),
        ]
        .into();
        let adapters: HashMap<Key, AdapterObject> = [
            (key("team-a", "sql"), adapter("llama", 10)),
            // team-b attaching an adapter to team-a's model: not routed.
            (key("team-b", "steal"), adapter("llama", 5)),
            // A model nobody serves.
            (key("team-a", "orphan"), adapter("gone", 5)),
            // The same name in two namespaces: the older wins.
            (key("team-b", "chat"), adapter("qwen", 1)),
            (key("team-a", "chat"), adapter("llama", 2)),
            // Fails the adapter check (name equals its base model).
            (key("team-a", "llama"), adapter("llama", 3)),
        ]
        .into();
        let got: Vec<(String, String)> = declared(&adapters, &pools)
            .into_iter()
            .map(|a| (a.name, a.base_model))
            .collect();
        let want = [("chat", "qwen"), ("chat", "llama"), ("sql", "llama")];
        assert_eq!(
            got,
            want.map(|(n, b)| (n.to_owned(), b.to_owned())),
            "oldest first; the registry keeps the first of a name"
        );
    }
}
