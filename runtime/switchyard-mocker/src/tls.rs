//! TLS on the mocker's listener (`--tls-cert`, `--tls-key`), so the frontend's TLS to
//! workers (`https://` worker URLs) can be tested against a real server. HTTP/1.1 only, as
//! the mocker's plain listener; the files are read once at start-up.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::{MockerError, Result};

#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (needs `--tls-key`).
    #[arg(long = "tls-cert", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long = "tls-key", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The acceptor when TLS is on; a bad file is a start-up error naming the flag.
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>> {
        let bad = |m: String| MockerError::InvalidArgs(m);
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c, k),
            _ => return Err(bad("--tls-cert and --tls-key go together".into())),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| bad(format!("--tls-cert {}: {e}", cert.display())))?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| bad(format!("--tls-key {}: {e}", key.display())))?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| bad(format!("--tls-cert/--tls-key: not a usable pair: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }
}
