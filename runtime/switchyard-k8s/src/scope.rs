//! Which namespaces the operator and the frontend's discovery watch: a list (namespaced Roles in
//! each suffice — least privilege) or every namespace (needs ClusterRoles).
//!
//! A watch on `Api::namespaced` cannot span several namespaces, so a list becomes one watch per
//! namespace; [`WatchScope::apis`] returns them in a fixed order so callers can tag each
//! watch's events with its namespace.

use std::collections::BTreeSet;

use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::instances::Key;

/// The namespaces watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchScope {
    /// Only these namespaces (sorted, without duplicates, never empty).
    Namespaces(Vec<String>),
    /// Every namespace.
    Cluster,
}

/// One watch of a [`WatchScope`]: `Some(namespace)` or `None` for the cluster-wide watch.
pub type WatchNamespace = Option<String>;

impl WatchScope {
    /// A scope from namespace names; blank names are dropped and an empty list means every
    /// namespace (the frontend's `--kubernetes-namespace ""` has always meant that).
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set: BTreeSet<String> = names
            .into_iter()
            .map(|n| n.as_ref().trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if set.is_empty() {
            Self::Cluster
        } else {
            Self::Namespaces(set.into_iter().collect())
        }
    }

    /// A scope from a comma-separated list (`"a,b"`); empty means every namespace.
    pub fn parse(list: &str) -> Self {
        Self::from_names(list.split(','))
    }

    /// One namespace per watch (`None` = cluster-wide), in the order [`WatchScope::apis`] uses.
    pub fn watches(&self) -> Vec<WatchNamespace> {
        match self {
            Self::Namespaces(list) => list.iter().cloned().map(Some).collect(),
            Self::Cluster => vec![None],
        }
    }

    /// One `Api` per watch.
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.watches()
            .into_iter()
            .map(|ns| match ns {
                Some(ns) => Api::namespaced(client.clone(), &ns),
                None => Api::all(client.clone()),
            })
            .collect()
    }
}

/// Whether the object `key` is one the watch on `namespace` reports.
pub fn in_watch(namespace: &WatchNamespace, key: &Key) -> bool {
    namespace.as_ref().is_none_or(|ns| *ns == key.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_trimmed_sorted_and_deduplicated() {
        assert_eq!(
            WatchScope::parse(" b,a,, b "),
            WatchScope::Namespaces(vec!["a".into(), "b".into()])
        );
        assert_eq!(WatchScope::parse(""), WatchScope::Cluster);
        assert_eq!(WatchScope::parse(" , "), WatchScope::Cluster);
        assert_eq!(WatchScope::Cluster.watches(), vec![None]);
    }

    #[test]
    fn a_namespaced_watch_owns_only_its_namespace() {
        let key = ("a".to_string(), "x".to_string());
        assert!(in_watch(&Some("a".into()), &key));
        assert!(!in_watch(&Some("b".into()), &key));
        assert!(in_watch(&None, &key));
    }
}
