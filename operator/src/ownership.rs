//! The WorkerPool `Conflict` condition: whether the pool's namespace owns its model
//! ([`switchyard_k8s::ownership`], the same rule the frontend's discovery applies).
//!
//! The operator still reconciles a conflicting pool's Deployment and Service (deleting pods
//! on a possibly stale view of other namespaces would be worse); the condition tells its
//! owner why the frontend sends it no traffic.

use kube::runtime::reflector::Store;
use kube::ResourceExt;
use parking_lot::RwLock;
use switchyard_k8s::conditions::ConditionUpdate;
use switchyard_k8s::ownership::{self, Claim, ModelOwners};
use switchyard_k8s::WorkerPool;

/// WorkerPool: another namespace owns the pool's model, so the frontend does not route to it.
pub const CONFLICT: &str = "Conflict";

/// Every WorkerPool the operator's controllers have listed (one store per watched namespace,
/// or one for the cluster), plus the explicit owners.
#[derive(Default)]
pub struct PoolClaims {
    stores: RwLock<Vec<Store<WorkerPool>>>,
    pub explicit: ModelOwners,
}

impl PoolClaims {
    pub fn new(explicit: ModelOwners) -> Self {
        Self {
            stores: RwLock::default(),
            explicit,
        }
    }

    /// Adds a controller's store of pools.
    pub fn add(&self, store: Store<WorkerPool>) {
        self.stores.write().push(store);
    }

    /// The `Conflict` condition of `pool`, judged against every known pool and `pool` itself
    /// (which a store may not hold yet).
    pub fn condition(&self, pool: &WorkerPool) -> ConditionUpdate {
        let others: Vec<_> = self.stores.read().iter().flat_map(|s| s.state()).collect();
        conflict(pool, others.iter().map(|p| p.as_ref()), &self.explicit)
    }
}

/// The `Conflict` condition of `pool` among `pools`.
pub fn conflict<'a>(
    pool: &'a WorkerPool,
    pools: impl Iterator<Item = &'a WorkerPool>,
    explicit: &ModelOwners,
) -> ConditionUpdate {
    let namespace = pool.namespace().unwrap_or_default();
    let claims: Vec<(String, String, Option<_>)> = pools
        .chain(std::iter::once(pool))
        .map(|p| {
            (
                p.namespace().unwrap_or_default(),
                p.spec.model.clone(),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        })
        .collect();
    let owners = ownership::owners(
        claims.iter().map(|(namespace, model, created)| Claim {
            namespace,
            model,
            created: *created,
        }),
        explicit,
    );
    let model = &pool.spec.model;
    if ownership::owns(&owners, explicit, &namespace, model) {
        return ConditionUpdate::new(
            CONFLICT,
            false,
            "ModelOwned",
            format!("namespace {namespace} owns model {model}"),
        );
    }
    let owner = owners
        .get(model)
        .or_else(|| explicit.get(model))
        .cloned()
        .unwrap_or_default();
    let reason = if explicit.contains_key(model) {
        "ModelAssignedToOtherNamespace"
    } else {
        "ModelClaimedByOtherNamespace"
    };
    ConditionUpdate::new(
        CONFLICT,
        true,
        reason,
        format!(
            "model {model} belongs to namespace {owner}; the frontend does not route to this pool"
        ),
    )
}
