//! The configured tenants, looked up by key digest, and each tenant's run-time state.

use std::collections::HashMap;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::config::{digest, Priority, TenantSpec};
use super::glob;
use super::limiter::Limiter;
use super::metrics::TenantMetrics;

/// One tenant as the request path sees it. In-flight requests hold an `Arc` of the tenant
/// they were admitted as, so a reload never changes who a running request belongs to.
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    digest: [u8; 32],
    models: Vec<String>,
    pub priority: Priority,
    pub weight: u32,
    pub queue_deadline_ms: Option<u64>,
    pub ttft_slo_ms: Option<f64>,
    pub limiter: Arc<Limiter>,
    pub metrics: Arc<TenantMetrics>,
}

impl Tenant {
    /// Whether the tenant may use `model` (an empty list allows every model).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| glob::matches(p, model))
    }
}

/// An immutable, validated tenant list; replaced whole on reload.
#[derive(Debug, Default)]
pub struct TenantSet {
    tenants: Vec<Arc<Tenant>>,
    by_digest: HashMap<[u8; 32], usize>,
    /// Id → index (usage reports from peers name tenants by id).
    by_id: HashMap<String, usize>,
    /// `key_file`s read to build this set: a change to one reloads the list too.
    key_files: Vec<String>,
}

impl TenantSet {
    /// Validates `specs` (reading key files) and builds the set. A tenant whose id exists in
    /// `previous` keeps its metrics, and its limiter too if its limits are unchanged.
    pub fn build(
        specs: &[TenantSpec],
        key: &str,
        previous: Option<&TenantSet>,
    ) -> Result<Self, String> {
        let now = Instant::now();
        let mut set = TenantSet::default();
        let mut ids = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            let entry = format!("{key}[{i}]");
            let digest = spec.validate(&entry)?;
            if ids.insert(spec.id.clone(), i).is_some() {
                return Err(format!("{entry}.id: duplicate tenant id `{}`", spec.id));
            }
            if let Some(&other) = set.by_digest.get(&digest) {
                return Err(format!(
                    "{entry}: same key as {key}[{other}] (keys must identify one tenant)"
                ));
            }
            let old = previous.and_then(|p| p.by_id(&spec.id));
            let limiter = match old {
                Some(t) if t.limiter.limits() == &spec.limits => Arc::clone(&t.limiter),
                _ => Arc::new(Limiter::new(&spec.limits, now)),
            };
            let metrics = old.map(|t| Arc::clone(&t.metrics)).unwrap_or_default();
            set.key_files.extend(spec.key_file.iter().cloned());
            set.by_digest.insert(digest, set.tenants.len());
            set.tenants.push(Arc::new(Tenant {
                id: spec.id.clone(),
                digest,
                models: spec.models.clone(),
                priority: spec.priority,
                weight: spec.weight,
                queue_deadline_ms: spec.queue_deadline_ms,
                ttft_slo_ms: spec.ttft_slo_ms,
                limiter,
                metrics,
            }));
        }
        set.by_id = ids;
        Ok(set)
    }

    /// The tenant whose key this is. The map is keyed by the key's sha256, so lookup time
    /// depends only on the digest of what the caller sent, never on how much of a stored
    /// key it got right; the final comparison is constant-time all the same.
    pub fn find(&self, key: &[u8]) -> Option<&Arc<Tenant>> {
        let digest = digest(key);
        let tenant = &self.tenants[*self.by_digest.get(&digest)?];
        bool::from(tenant.digest.ct_eq(&digest)).then_some(tenant)
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(*self.by_id.get(id)?)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.iter()
    }

    pub fn key_files(&self) -> &[String] {
        &self.key_files
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(yaml: &str) -> Vec<TenantSpec> {
        super::super::config::parse_file(yaml).unwrap()
    }

    fn hex(key: &str) -> String {
        digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn finds_by_key_and_checks_models() {
        let yaml = format!(
            "- id: a\n  key_sha256: {}\n  models: ['mock-*']\n- id: b\n  key_sha256: {}\n",
            hex("key-a"),
            hex("key-b")
        );
        let set = TenantSet::build(&specs(&yaml), "tenants", None).unwrap();
        let a = set.find(b"key-a").unwrap();
        assert_eq!(a.id, "a");
        assert!(a.allows_model("mock-model") && !a.allows_model("llama"));
        assert!(set.find(b"key-b").unwrap().allows_model("anything"));
        assert!(set.find(b"key-c").is_none());
        assert!(set.find(b"").is_none());
    }

    #[test]
    fn rejects_duplicate_ids_and_keys() {
        let dup_id = format!(
            "- id: a\n  key_sha256: {}\n- id: a\n  key_sha256: {}\n",
            hex("1"),
            hex("2")
        );
        let err = TenantSet::build(&specs(&dup_id), "tenants", None).unwrap_err();
        assert!(err.contains("tenants[1].id"), "{err}");
        let dup_key = format!(
            "- id: a\n  key_sha256: {}\n- id: b\n  key_sha256: {}\n",
            hex("1"),
            hex("1")
        );
        let err = TenantSet::build(&specs(&dup_key), "tenants", None).unwrap_err();
        assert!(err.contains("same key as tenants[0]"), "{err}");
    }

    #[test]
    fn a_rebuild_keeps_state_of_unchanged_tenants() {
        let v1 = format!(
            "- id: a\n  key_sha256: {}\n  limits: {{requests_per_second: 1}}\n- id: b\n  key_sha256: {}\n  limits: {{requests_per_second: 1}}\n",
            hex("a"),
            hex("b")
        );
        let old = TenantSet::build(&specs(&v1), "t", None).unwrap();
        let v2 = format!(
            "- id: a\n  key_sha256: {}\n  limits: {{requests_per_second: 1}}\n- id: b\n  key_sha256: {}\n  limits: {{requests_per_second: 5}}\n",
            hex("a2"),
            hex("b")
        );
        let new = TenantSet::build(&specs(&v2), "t", Some(&old)).unwrap();
        let (a_old, a_new) = (old.by_id("a").unwrap(), new.by_id("a").unwrap());
        assert!(
            Arc::ptr_eq(&a_old.limiter, &a_new.limiter),
            "same limits: kept"
        );
        assert!(
            new.find(b"a").is_none() && new.find(b"a2").is_some(),
            "key rotated"
        );
        let (b_old, b_new) = (old.by_id("b").unwrap(), new.by_id("b").unwrap());
        assert!(
            !Arc::ptr_eq(&b_old.limiter, &b_new.limiter),
            "new limits: new state"
        );
        assert!(
            Arc::ptr_eq(&b_old.metrics, &b_new.metrics),
            "metrics continue"
        );
    }
}
