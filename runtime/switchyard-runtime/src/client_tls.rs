//! TLS to workers: `https://` worker URLs are dialled with rustls, verifying the worker's
//! certificate against `upstream.tls.ca` (a private CA bundle) or, without it, the Mozilla
//! roots (webpki-roots); `http://` URLs stay plain. An `https://` worker is never reached
//! in plain text: a certificate that does not verify fails the connection, and the error
//! (e.g. `invalid peer certificate: UnknownIssuer`) becomes the instance's `last_error`.
//!
//! The names follow the etcd and NATS TLS options (`ca`, `cert`, `key`); the files are
//! read once at start-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::{ClientConfig as RustlsConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// `upstream.tls`: how `https://` workers are verified, and the client certificate sent to
/// workers that verify clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM CA bundle that signs the workers' certificates (instead of the public roots).
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain and its key, for workers that verify clients.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl UpstreamTls {
    /// The rustls client configuration: errors name the key and the file.
    pub fn rustls_config(&self) -> Result<RustlsConfig, String> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                for cert in read_certs(path).map_err(|e| format!("upstream.tls.ca: {e}"))? {
                    roots.add(cert).map_err(|e| {
                        format!(
                            "upstream.tls.ca: {}: unusable certificate: {e}",
                            path.display()
                        )
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = RustlsConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("upstream.tls: {e}"))?
            .with_root_certificates(roots);
        // ALPN is left to the connector (it offers http/1.1, all the worker client speaks).
        let config = match (&self.cert, &self.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert).map_err(|e| format!("upstream.tls.cert: {e}"))?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("upstream.tls.key: {}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    format!(
                        "upstream.tls: {} and {} do not make a usable pair: {e}",
                        cert.display(),
                        key.display()
                    )
                })?
            }
            _ => return Err("upstream.tls: cert and key go together".into()),
        };
        Ok(config)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_the_public_roots_and_errors_name_key_and_file() {
        assert!(UpstreamTls::default().rustls_config().is_ok());
        let missing = UpstreamTls {
            ca: Some("/no/such/ca.pem".into()),
            ..UpstreamTls::default()
        };
        let err = missing.rustls_config().unwrap_err();
        assert!(
            err.contains("upstream.tls.ca") && err.contains("/no/such/ca.pem"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("sy-upstream-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = UpstreamTls {
            ca: Some(junk.clone()),
            ..UpstreamTls::default()
        }
        .rustls_config()
        .unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let half = UpstreamTls {
            cert: Some(junk),
            ..UpstreamTls::default()
        };
        assert!(half.rustls_config().unwrap_err().contains("go together"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
