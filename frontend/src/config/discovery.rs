//! `discovery:` — where instances come from (`static`, `etcd`, `kubernetes`), how to reach and
//! trust the etcd cluster, Kubernetes tenancy, and the API keys discovered workers name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_runtime::WorkerAuth;

use super::{invalid, ConfigError};

/// `discovery:` in the YAML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverySection {
    /// `static` (the top-level `workers` list), `etcd` or `kubernetes` (`--discovery`).
    pub kind: DiscoveryKind,
    pub etcd: EtcdSection,
    pub kubernetes: KubernetesSection,
    /// Worker API keys by name, each a file (`docs/engines.md`): what discovered workers'
    /// `api_key_name` refers to.
    pub worker_api_keys: BTreeMap<String, String>,
    /// A directory whose every file is a worker API key named after the file (a mounted Secret).
    pub worker_api_keys_dir: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    #[default]
    Static,
    Etcd,
    Kubernetes,
}

/// `discovery.etcd:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdSection {
    /// etcd endpoint(s) for `kind: etcd` (`--etcd`).
    pub endpoint: Option<String>,
    /// Key prefix of the instances (default `/switchyard/instances/`).
    pub prefix: Option<String>,
    /// User/password (from a file) and TLS (CA, client certificate).
    pub auth: switchyard_etcd::EtcdAuth,
}

/// `discovery.kubernetes:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSection {
    /// Namespaces watched, comma-separated (unset or empty: every namespace).
    pub namespace: Option<String>,
    /// `model: namespace`: the namespace whose WorkerPools serve each listed model.
    pub model_owners: switchyard_k8s::ownership::ModelOwners,
    /// Let a RouterPlugin apply to models of other namespaces' pools.
    pub cross_namespace_plugins: bool,
}

impl KubernetesSection {
    /// The tenancy rules the Kubernetes watcher applies.
    pub fn tenancy(&self) -> switchyard_k8s::tenancy::TenancyConfig {
        switchyard_k8s::tenancy::TenancyConfig {
            model_owners: self.model_owners.clone(),
            cross_namespace_plugins: self.cross_namespace_plugins,
        }
    }
}

impl DiscoverySection {
    pub(super) fn validate(&self, static_workers: usize) -> Result<(), ConfigError> {
        self.etcd
            .auth
            .validate()
            .map_err(|e| invalid("discovery.etcd.auth", e.to_string()))?;
        if self.kind == DiscoveryKind::Static && static_workers == 0 {
            return Err(invalid(
                "workers",
                "static discovery needs at least one worker (--worker MODEL=URL)",
            ));
        }
        if self.kind == DiscoveryKind::Etcd && self.etcd.endpoint.is_none() {
            return Err(invalid(
                "discovery.etcd.endpoint",
                "`--discovery etcd` needs `--etcd URL`",
            ));
        }
        if let Some(p) = &self.etcd.prefix {
            if !(p.starts_with('/') && p.ends_with('/')) {
                return Err(invalid(
                    "discovery.etcd.prefix",
                    format!("must start and end with '/': {p:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The worker API keys discovered specs may name, read from their files.
    pub fn worker_keys(&self) -> Result<BTreeMap<String, WorkerAuth>, ConfigError> {
        crate::worker_keys::load(&self.worker_api_keys, self.worker_api_keys_dir.as_deref())
            .map_err(|m| invalid("discovery.worker_api_keys", m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_needs_an_endpoint_and_a_slashed_prefix() {
        let section: DiscoverySection = serde_yaml::from_str(
            "kind: etcd\netcd: { endpoint: http://127.0.0.1:2379, prefix: /blue/ }\n",
        )
        .unwrap();
        section.validate(0).unwrap();
        assert_eq!(section.etcd.prefix.as_deref(), Some("/blue/"));
        let mut bad = section.clone();
        bad.etcd.prefix = Some("blue".into());
        let err = bad.validate(0).unwrap_err().to_string();
        assert!(err.contains("discovery.etcd.prefix"), "{err}");
        bad.etcd = EtcdSection::default();
        let err = bad.validate(0).unwrap_err().to_string();
        assert!(err.contains("discovery.etcd.endpoint"), "{err}");
    }

    #[test]
    fn static_discovery_needs_workers() {
        let err = DiscoverySection::default()
            .validate(0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("workers"), "{err}");
        DiscoverySection::default().validate(1).unwrap();
    }

    #[test]
    fn kubernetes_tenancy_reads_owners() {
        let section: DiscoverySection = serde_yaml::from_str(
            "kind: kubernetes\nkubernetes: { namespace: a, model_owners: { m: team-a }, cross_namespace_plugins: true }\n",
        )
        .unwrap();
        let tenancy = section.kubernetes.tenancy();
        assert!(tenancy.cross_namespace_plugins);
        assert_eq!(section.kubernetes.namespace.as_deref(), Some("a"));
    }
}
