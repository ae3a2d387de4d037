//! Connection settings shared by registration, discovery and the sidecar.

use std::time::Duration;

use crate::keys::DEFAULT_PREFIX;
use crate::{Error, Result};

/// Where etcd is and how patient to be with it.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `http://host:port` endpoints of one etcd cluster.
    pub endpoints: Vec<String>,
    /// Key prefix for instances; must end with `/`. Default [`DEFAULT_PREFIX`].
    pub prefix: String,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for one unary request (get, put, grant, revoke).
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive: how a silent (not reset) connection is noticed as dead.
    pub keep_alive: Duration,
}

impl EtcdConfig {
    /// Settings for one endpoint (or a comma-separated list), defaults otherwise.
    pub fn new(endpoints: &str) -> Self {
        Self {
            endpoints: endpoints
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect(),
            prefix: DEFAULT_PREFIX.to_string(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(5),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.endpoints.is_empty() {
            return Err(Error::Config("no etcd endpoint given".into()));
        }
        if !self.prefix.starts_with('/') || !self.prefix.ends_with('/') {
            return Err(Error::Config(format!(
                "etcd key prefix must start and end with '/': {:?}",
                self.prefix
            )));
        }
        Ok(())
    }

    /// Opens a client. etcd-client connects lazily, so a dead endpoint shows up on the first
    /// request rather than here; callers bound every request with `request_timeout`.
    pub(crate) async fn connect(&self) -> Result<etcd_client::Client> {
        self.validate()?;
        let opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(self.keep_alive, self.keep_alive)
            .with_keep_alive_while_idle(true)
            // A member cut off from its leader would serve stale data; fail instead.
            .with_require_leader(true);
        let connect = etcd_client::Client::connect(&self.endpoints, Some(opts));
        tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| Error::Timeout("connect"))?
            .map_err(Error::from)
    }

    /// Bounds one unary request.
    pub(crate) async fn timed<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        tokio::time::timeout(self.request_timeout, fut)
            .await
            .map_err(|_| Error::Timeout(what))?
            .map_err(Error::from)
    }
}
