//! The real `etcd` process comes from the workspace's one harness (`switchyard-tests`); this
//! adds only the client settings these tests use.
#![allow(dead_code)]

use std::time::Duration;

use switchyard_etcd::EtcdConfig;
pub use switchyard_tests::services::Etcd;

/// Short timeouts, but loose enough for a loaded 2-core machine; a killed etcd is noticed by
/// the connection reset anyway.
pub fn config(etcd: &Etcd) -> EtcdConfig {
    let mut cfg = EtcdConfig::new(&etcd.url());
    cfg.connect_timeout = Duration::from_secs(1);
    cfg.request_timeout = Duration::from_secs(2);
    cfg.keep_alive = Duration::from_secs(3);
    cfg
}
