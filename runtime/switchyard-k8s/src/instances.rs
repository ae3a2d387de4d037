//! The pure half of instance discovery: WorkerPools and EndpointSlices in, a keyed instance
//! set out, and the [`DiscoveryEvent`]s that turn one set into the next.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use switchyard_runtime::instance::CanaryOverride;
use switchyard_runtime::{DiscoveryEvent, InstanceSpec};

use crate::labels;
use crate::ownership::{self, Claim, ModelOwners};
use crate::workerpool::{HealthCheck, WorkerPoolSpec};

/// `(namespace, name)` of an object.
pub type Key = (String, String);

/// The model of every known WorkerPool: what `RouterPlugin.spec.appliesTo.pools` resolves
/// against.
pub type PoolModels = BTreeMap<Key, String>;

/// What discovery knows: pools and slices by key.
#[derive(Debug, Default)]
pub struct InstanceIndex {
    pub pools: HashMap<Key, WorkerPoolSpec>,
    pub slices: HashMap<Key, EndpointSlice>,
    /// Each pool's `creationTimestamp`: the order in which namespaces claimed models.
    pub created: HashMap<Key, Timestamp>,
    /// Models owned by a namespace regardless of claim order ([`ownership`]).
    pub model_owners: ModelOwners,
}

impl InstanceIndex {
    pub fn key_of<K: kube::Resource>(obj: &K) -> Key {
        (obj.namespace().unwrap_or_default(), obj.name_any())
    }

    pub fn upsert_slice(&mut self, slice: EndpointSlice) {
        self.slices.insert(Self::key_of(&slice), slice);
    }

    /// The model each routable pool serves (a pool that lost its model to another
    /// namespace serves nothing here).
    pub fn pool_models(&self) -> PoolModels {
        let owners = self.owners();
        self.pools
            .iter()
            .filter(|(key, spec)| self.owned(&owners, key, spec))
            .map(|(key, spec)| (key.clone(), spec.model.clone()))
            .collect()
    }

    /// The owning namespace of every model a pool names.
    pub fn owners(&self) -> BTreeMap<String, String> {
        let claims = self.pools.iter().map(|(key, spec)| Claim {
            namespace: &key.0,
            model: &spec.model,
            created: self.created.get(key).copied(),
        });
        ownership::owners(claims, &self.model_owners)
    }

    /// Whether pool `key` serving `spec.model` is in the model's owning namespace.
    pub fn owned(
        &self,
        owners: &BTreeMap<String, String>,
        key: &Key,
        spec: &WorkerPoolSpec,
    ) -> bool {
        ownership::owns(owners, &self.model_owners, &key.0, &spec.model)
    }

    /// Every ready instance, keyed by id.
    /// Pools whose model another namespace owns contribute none: they would otherwise be
    /// sent that namespace's prompts.
    pub fn instances(&self) -> BTreeMap<String, InstanceSpec> {
        let owners = self.owners();
        let mut out = BTreeMap::new();
        for ((namespace, _), slice) in &self.slices {
            let Some(service) = slice.labels().get(labels::SERVICE_NAME) else {
                continue;
            };
            let key = (namespace.clone(), service.clone());
            let Some(pool) = self.pools.get(&key) else {
                continue;
            };
            if !self.owned(&owners, &key, pool) {
                continue;
            }
            for inst in slice_instances(namespace, service, pool, slice) {
                out.insert(inst.id.clone(), inst);
            }
        }
        out
    }
}

/// Ready instances of one slice of pool `pool_name`.
fn slice_instances(
    namespace: &str,
    pool_name: &str,
    pool: &WorkerPoolSpec,
    slice: &EndpointSlice,
) -> Vec<InstanceSpec> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    let port = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .or_else(|| ports.first())
        .and_then(|p| p.port)
        .unwrap_or(pool.port);
    let mut out = Vec::new();
    for ep in &slice.endpoints {
        let conditions = ep.conditions.as_ref();
        // A nil `ready` means ready (EndpointSlice API contract); terminating endpoints are
        // draining and get no new requests.
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
        let Some(addr) = ep.addresses.first() else {
            continue;
        };
        if !ready || terminating {
            continue;
        }
        let host = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr.clone()
        };
        let target = ep
            .target_ref
            .as_ref()
            .and_then(|t| t.name.clone())
            .unwrap_or_else(|| addr.clone());
        let mut inst = InstanceSpec::new(
            format!("{namespace}/{pool_name}/{target}"),
            pool.model.clone(),
            format!("http://{host}:{port}"),
        );
        inst.engine = pool.engine;
        inst.api = pool.api;
        inst.apis = pool.apis.iter().map(|a| a.as_str().to_owned()).collect();
        // The pool's role drives two-stage routing (docs/disaggregation.md).
        inst.role = pool.role.to_runtime();
        inst.weight = pool.routing.weight as f32;
        inst.canary = Some(canary(&pool.health));
        // Scoped by namespace: a pool can only ask for keys filed under its own namespace,
        // or a pool in one team's namespace could have another team's key sent to its pods.
        inst.api_key_name = pool
            .api_key
            .as_ref()
            .map(|k| format!("{namespace}.{}", k.frontend_name()));
        inst.health_path = Some(pool.health.path.clone());
        inst.labels = pool.routing.labels.clone();
        inst.labels
            .insert(labels::POOL.to_string(), pool_name.to_string());
        inst.labels
            .insert(labels::ROLE.to_string(), pool.role.as_str().to_string());
        inst.labels.insert(
            "switchyard.dev/namespace".to_string(),
            namespace.to_string(),
        );
        if let Some(node) = &ep.node_name {
            inst.labels
                .insert("kubernetes.io/hostname".to_string(), node.clone());
        }
        out.push(inst);
    }
    out
}

/// The pool's canary settings as the frontend's per-instance override. Out-of-range numbers
/// (which CEL rejects) fall back to the frontend's config.
fn canary(health: &HealthCheck) -> CanaryOverride {
    let millis = |secs: i32| u64::try_from(secs).ok().map(|s| s.saturating_mul(1_000));
    CanaryOverride {
        path: health.canary_path.clone(),
        body: health.canary.as_ref().map(|body| body.to_string()),
        idle_ms: millis(health.idle_seconds).filter(|&ms| ms > 0),
        timeout_ms: millis(health.timeout_seconds).filter(|&ms| ms > 0),
    }
}

/// Events that turn `old` into `new`: `Remove` for ids gone, `Upsert` for new or changed.
pub fn diff(
    old: &BTreeMap<String, InstanceSpec>,
    new: &BTreeMap<String, InstanceSpec>,
) -> Vec<DiscoveryEvent> {
    let mut events = Vec::new();
    for id in old.keys() {
        if !new.contains_key(id) {
            events.push(DiscoveryEvent::Remove { id: id.clone() });
        }
    }
    for (id, inst) in new {
        if old.get(id) != Some(inst) {
            events.push(DiscoveryEvent::Upsert(Box::new(inst.clone())));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(api_key: serde_json::Value) -> WorkerPoolSpec {
        serde_json::from_value(json!({"model": "m", "template": {"image": "i"}, "apiKey": api_key}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn slice() -> EndpointSlice {
        serde_json::from_value(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "p-x", "namespace": "team-b"},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.9"]}],
            "ports": [{"name": "http", "port": 8000}]}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_pools_api_key_is_named_under_its_own_namespace() {
        let named = |key| {
            slice_instances("team-b", "p", &spec(key), &slice())[0]
                .api_key_name
                .clone()
        };
        assert_eq!(
            named(json!({"secretName": "llama-key"})),
            Some("team-b.llama-key".to_owned())
        );
        // Naming another team's key only ever reaches keys filed under this namespace.
        assert_eq!(
            named(json!({"secretName": "s", "frontendKey": "team-a.llama-key"})),
            Some("team-b.team-a.llama-key".to_owned())
        );
        let keyless: WorkerPoolSpec =
            serde_json::from_value(json!({"model": "m", "template": {"image": "i"}}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            slice_instances("team-b", "p", &keyless, &slice())[0].api_key_name,
            None
        );
    }

    #[test]
    fn a_pools_native_apis_reach_its_instances_and_unknown_names_do_not_parse() {
        let pool: WorkerPoolSpec = serde_json::from_value(
            json!({"model": "m", "template": {"image": "i"}, "apis": ["responses", "messages"]}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let inst = &slice_instances("team-b", "p", &pool, &slice())[0];
        assert_eq!(inst.apis, ["responses", "messages"]);
        assert!(inst.serves(switchyard_runtime::Api::Messages));
        let unknown = serde_json::from_value::<WorkerPoolSpec>(
            json!({"model": "m", "template": {"image": "i"}, "apis": ["gemini"]}),
        );
        assert!(unknown.is_err());
    }
}
