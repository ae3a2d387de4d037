//! The roots plugin-URL fetches trust: the Mozilla roots, plus a private CA bundle when
//! `SWITCHYARD_PLUGIN_CA_FILE` names one (a registry or artifact store behind a corporate CA;
//! the chart mounts it from `pluginCA.configMap`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::{Error, Result};

/// Environment variable naming a PEM file of extra CA certificates for plugin URL fetches.
pub const PLUGIN_CA_FILE_ENV: &str = "SWITCHYARD_PLUGIN_CA_FILE";

/// The Mozilla roots plus every certificate in `pem` (if given). A bundle without a single
/// usable certificate is an error: silently trusting only public roots is what the operator
/// set the file to avoid.
pub fn roots(pem: Option<&[u8]>) -> Result<RootCertStore> {
    let mut store = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let Some(pem) = pem else {
        return Ok(store);
    };
    let fail = |message: String| Error::Fetch {
        url: String::new(),
        message: format!("{PLUGIN_CA_FILE_ENV}: {message}"),
    };
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| fail(format!("unreadable PEM: {e}")))?;
        store
            .add(cert)
            .map_err(|e| fail(format!("not a CA certificate: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(fail("holds no certificate".to_string()));
    }
    Ok(store)
}

/// [`roots`] with the bundle named by [`PLUGIN_CA_FILE_ENV`], if set.
pub fn roots_from_env() -> Result<RootCertStore> {
    match std::env::var_os(PLUGIN_CA_FILE_ENV) {
        None => roots(None),
        Some(path) => {
            let pem = std::fs::read(&path).map_err(|e| Error::Fetch {
                url: String::new(),
                message: format!("{PLUGIN_CA_FILE_ENV}={}: {e}", path.to_string_lossy()),
            })?;
            roots(Some(&pem))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bundle_means_the_public_roots_only() {
        assert_eq!(
            roots(None).unwrap().len(),
            webpki_roots::TLS_SERVER_ROOTS.len()
        );
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let err = roots(Some(b"not a pem file")).unwrap_err();
        assert!(err.to_string().contains("holds no certificate"), "{err}");
    }
}
