//! Connection settings shared by registration, discovery and the sidecar.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::keys::DEFAULT_PREFIX;
use crate::{Error, Result};

/// How to authenticate to etcd and protect the link (the `etcd_auth:` config section).
/// Secrets are read from files when connecting, never given as values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdAuth {
    /// etcd user (role-based auth); its password is read from `password_file`.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// PEM CA that signs the etcd server certificates; turns TLS on (use `https://`
    /// endpoints).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for etcd's `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl EtcdAuth {
    pub fn validate(&self) -> Result<()> {
        if self.user.is_some() != self.password_file.is_some() {
            return Err(Error::Config(
                "etcd user and password_file go together".into(),
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(Error::Config("etcd cert and key go together".into()));
        }
        Ok(())
    }

    fn is_tls(&self) -> bool {
        self.ca.is_some() || self.cert.is_some()
    }

    /// `opts` with credentials and TLS; reads the files (at each connect, so rotated
    /// certificates and passwords are picked up on reconnect).
    fn apply(&self, mut opts: etcd_client::ConnectOptions) -> Result<etcd_client::ConnectOptions> {
        self.validate()?;
        if let (Some(user), Some(path)) = (&self.user, &self.password_file) {
            let password = read(path)?;
            let password = String::from_utf8(password)
                .map_err(|_| Error::Config(format!("{}: not UTF-8", path.display())))?;
            opts = opts.with_user(user.clone(), password.trim_end_matches(['\r', '\n']));
        }
        if self.is_tls() {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &self.ca {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
            }
            if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            opts = opts.with_tls(tls);
        }
        Ok(opts)
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

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
    /// Credentials and TLS.
    pub auth: EtcdAuth,
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
            auth: EtcdAuth::default(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.endpoints.is_empty() {
            return Err(Error::Config("no etcd endpoint given".into()));
        }
        self.auth.validate()?;
        if self.auth.is_tls() && self.endpoints.iter().any(|e| !e.starts_with("https://")) {
            return Err(Error::Config(
                "etcd TLS (ca, cert) needs https:// endpoints".into(),
            ));
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
        let opts = self.auth.apply(opts)?;
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
