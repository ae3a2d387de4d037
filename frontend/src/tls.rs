//! TLS on the public listener (rustls): `tls: { cert_file, key_file, client_ca_file? }`.
//!
//! ALPN offers `h2` and `http/1.1`; a client that negotiates `h2` is served HTTP/2 (with
//! stream, header-list and reset limits), any other HTTP/1.1. The certificate and key are
//! re-read when either file changes (size or modification time, polled once a second, as the
//! plugin and tenants files are): new handshakes use the new pair, open connections keep
//! theirs, and a pair that does not load is logged and the running one kept. With
//! `client_ca_file`, clients must present a certificate signed by that CA (mutual TLS).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::plugins::FileStamp;

/// `tls:` in the YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA bundle: when set, clients must present a certificate it signed.
    #[serde(default)]
    pub client_ca_file: Option<String>,
}

/// The ALPN protocols offered, in preference order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
const RELOAD_PERIOD: Duration = Duration::from_secs(1);

/// The loaded TLS setup: the acceptor and the swappable certificate behind it.
pub struct Tls {
    acceptor: TlsAcceptor,
    cert: Arc<ReloadingCert>,
    config: TlsConfig,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("config", &self.config).finish()
    }
}

impl Tls {
    /// Loads the files and builds the server configuration; errors name the file.
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load_pair(&provider, &config.cert_file, &config.key_file)?;
        let cert = Arc::new(ReloadingCert {
            current: ArcSwap::from_pointee(key),
        });
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match &config.client_ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("tls.client_ca_file: {path}: {e}"))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| format!("tls.client_ca_file: {path}: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server =
            builder.with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            cert,
            config: config.clone(),
        }))
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Re-reads the certificate and key; on error the running pair stays.
    pub fn reload(&self) -> Result<(), String> {
        let provider = rustls::crypto::ring::default_provider();
        let key = load_pair(&provider, &self.config.cert_file, &self.config.key_file)?;
        self.cert.current.store(Arc::new(key));
        Ok(())
    }

    /// Watches the certificate and key files and reloads them on change.
    pub fn spawn_reload(self: &Arc<Self>) -> JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let stamps = |t: &Tls| {
                [
                    FileStamp::of(&t.config.cert_file),
                    FileStamp::of(&t.config.key_file),
                ]
            };
            let mut seen = stamps(&tls);
            let mut tick = tokio::time::interval(RELOAD_PERIOD);
            loop {
                tick.tick().await;
                let now = stamps(&tls);
                if now == seen {
                    continue;
                }
                seen = now;
                match tls.reload() {
                    Ok(()) => tracing::info!("TLS certificate changed: reloaded"),
                    Err(error) => {
                        tracing::warn!(%error, "TLS certificate changed but does not load; keeping the running one")
                    }
                }
            }
        })
    }
}

/// Serves whichever certificate was loaded last.
#[derive(Debug)]
struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no PEM certificate"));
    }
    Ok(certs)
}

/// A certificate chain and its key, checked to belong together.
fn load_pair(
    provider: &CryptoProvider,
    cert_file: &str,
    key_file: &str,
) -> Result<CertifiedKey, String> {
    let certs = read_certs(cert_file).map_err(|e| format!("tls.cert_file: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls.key_file: {key_file}: {e}"))?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| format!("tls: {cert_file} and {key_file} do not make a usable pair: {e}"))
}

/// HTTP/2 limits for TLS clients that negotiate it: streams per connection, header-list
/// bytes, and resets (the "rapid reset" bound).
const H2_MAX_STREAMS: u32 = 256;
const H2_MAX_PENDING_RESETS: usize = 64;
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;

/// Completes the handshake on `io` (within `handshake_timeout`) and serves the connection
/// with HTTP/2 or HTTP/1.1, whichever ALPN chose, under the server's graceful shutdown.
pub fn spawn_connection<I, S>(
    acceptor: TlsAcceptor,
    io: I,
    http1: hyper::server::conn::http1::Builder,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
    handshake_timeout: Duration,
    max_header_bytes: usize,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::body::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    tokio::spawn(async move {
        let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        let io = TokioIo::new(crate::coalescing_io::CoalescingStream::new(stream));
        let served = if h2 {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_concurrent_streams(H2_MAX_STREAMS)
                .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
                .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
                .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
            watcher.watch(builder.serve_connection(io, service)).await
        } else {
            watcher.watch(http1.serve_connection(io, service)).await
        };
        if let Err(error) = served {
            tracing::debug!(%error, "TLS connection ended with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_mismatched_files_are_named() {
        let err = Tls::load(&TlsConfig {
            cert_file: "/no/such/cert.pem".into(),
            key_file: "/no/such/key.pem".into(),
            client_ca_file: None,
        })
        .unwrap_err();
        assert!(
            err.contains("tls.cert_file") && err.contains("/no/such/cert.pem"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let junk = junk.display().to_string();
        let err = Tls::load(&TlsConfig {
            cert_file: junk.clone(),
            key_file: junk,
            client_ca_file: None,
        })
        .unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
