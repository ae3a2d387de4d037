//! The operator writes only objects it owns.
//!
//! A WorkerPool names its Deployment and Service after itself. A forced server-side apply of
//! that name would take over whatever already has it — another team's Deployment, a Helm
//! release's Service — and rewrite it as a worker pool. So before the first write of a child
//! the operator reads it: absent, it is created; present and controlled by this pool (an owner
//! reference with the pool's uid and `controller: true`), it is applied; anything else is left
//! alone and the pool reports why.
//!
//! Later writes carry the child's uid, remembered from the last apply, as a precondition (as
//! Cluster API's server-side-apply helper does): if the object was deleted and someone else
//! created one by that name in between, the API server refuses the write (409) instead of
//! merging into the stranger's object, the uid is forgotten, and the next reconcile reads
//! again. The steady state costs no extra call.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::Error;

/// The uids of children this operator applied, by (kind, namespace, name).
#[derive(Debug, Default)]
pub struct OwnedChildren {
    uids: Mutex<HashMap<(&'static str, String, String), String>>,
}

impl OwnedChildren {
    /// The uid a write of this child must carry: the remembered one, or — the first time —
    /// the existing object's, after checking that `owner_uid` controls it (`None`: it does not
    /// exist yet and is created).
    pub async fn claim<K>(
        &self,
        api: &Api<K>,
        kind: &'static str,
        namespace: &str,
        name: &str,
        owner_uid: &str,
    ) -> Result<Option<String>, Error>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        if let Some(uid) = self.uids.lock().get(&key(kind, namespace, name)) {
            return Ok(Some(uid.clone()));
        }
        let Some(existing) = api.get_opt(name).await? else {
            return Ok(None);
        };
        if !controlled_by(existing.meta(), owner_uid) {
            return Err(Error::NotOwned(format!(
                "{kind} {namespace}/{name} already exists and is not controlled by this \
                 WorkerPool ({}); the operator leaves it alone: delete or rename it, or rename \
                 the pool",
                owners(existing.meta())
            )));
        }
        Ok(existing.uid())
    }

    /// Remembers the uid of a child just applied.
    pub fn applied(&self, kind: &'static str, namespace: &str, name: &str, uid: Option<String>) {
        let mut uids = self.uids.lock();
        match uid {
            Some(uid) => uids.insert(key(kind, namespace, name), uid),
            None => uids.remove(&key(kind, namespace, name)),
        };
    }

    /// Forgets a child: its write failed (perhaps its uid precondition) or its pool is gone.
    pub fn forget(&self, kind: &'static str, namespace: &str, name: &str) {
        self.uids.lock().remove(&key(kind, namespace, name));
    }
}

fn key(kind: &'static str, namespace: &str, name: &str) -> (&'static str, String, String) {
    (kind, namespace.to_owned(), name.to_owned())
}

/// Whether `owner_uid` is the object's controller.
pub fn controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner_uid && r.controller == Some(true))
}

/// Who controls the object, for the message.
fn owners(meta: &ObjectMeta) -> String {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) => format!("its controller is {} {}", r.kind, r.name),
        None => "it has no controller".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(refs: Vec<(&str, bool)>) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(
                refs.into_iter()
                    .map(|(uid, controller)| OwnerReference {
                        api_version: "switchyard.dev/v1alpha1".into(),
                        kind: "WorkerPool".into(),
                        name: "llama".into(),
                        uid: uid.into(),
                        controller: Some(controller),
                        block_owner_deletion: None,
                    })
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_the_controlling_owner_with_the_pools_uid_counts() {
        assert!(controlled_by(&meta(vec![("u1", true)]), "u1"));
        assert!(!controlled_by(&meta(vec![("u1", false)]), "u1"));
        assert!(!controlled_by(&meta(vec![("u2", true)]), "u1"));
        assert!(!controlled_by(&ObjectMeta::default(), "u1"));
        assert_eq!(owners(&ObjectMeta::default()), "it has no controller");
    }

    #[test]
    fn applied_uids_are_remembered_until_forgotten() {
        let children = OwnedChildren::default();
        children.applied("Deployment", "ns", "a", Some("u".into()));
        assert!(children
            .uids
            .lock()
            .contains_key(&key("Deployment", "ns", "a")));
        children.forget("Deployment", "ns", "a");
        assert!(children.uids.lock().is_empty());
    }
}
