//! Fetching a plugin's bytes from its source and checking them against the declared digest.
//!
//! Both the operator (to validate) and the frontend (to load) fetch the same way, and both
//! verify the sha256: the frontend never trusts the bytes just because the operator saw them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use sha2::{Digest, Sha256};

use crate::routerplugin::{PluginSource, RouterPlugin};
use crate::{Error, Result};

/// Largest component accepted (Python components are ~18 MB, JS ~12 MB).
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;
/// Timeout of one URL fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Fetches a URL; a trait so tests can serve bytes without a network.
pub trait UrlFetcher: Send + Sync {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes>>;
}

/// HTTP/HTTPS fetcher (rustls with the Mozilla roots, HTTP/1.1, no redirects).
pub struct HttpFetcher {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Empty<Bytes>,
    >,
}

/// Fetches and verifies a plugin's component.
#[derive(Clone)]
pub struct SourceFetcher {
    client: kube::Client,
    urls: Arc<dyn UrlFetcher>,
}

impl HttpFetcher {
    pub fn new() -> Result<Self> {
        let provider = rustls::crypto::ring::default_provider();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| Error::Fetch {
                url: String::new(),
                message: format!("TLS setup: {e}"),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self { client })
    }
}

impl UrlFetcher for HttpFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            let fail = |message: String| Error::Fetch {
                url: url.to_string(),
                message,
            };
            let uri: http::Uri = url.parse().map_err(|e| fail(format!("invalid URL: {e}")))?;
            let work = async {
                let resp = self
                    .client
                    .get(uri)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(fail(format!("HTTP {status}")));
                }
                let body = Limited::new(resp.into_body(), MAX_COMPONENT_BYTES);
                match body.collect().await {
                    Ok(collected) => Ok(collected.to_bytes()),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::TooLarge {
                        limit: MAX_COMPONENT_BYTES,
                    }),
                    Err(e) => Err(fail(e.to_string())),
                }
            };
            tokio::time::timeout(FETCH_TIMEOUT, work)
                .await
                .map_err(|_| fail(format!("timed out after {}s", FETCH_TIMEOUT.as_secs())))?
        })
    }
}

impl SourceFetcher {
    pub fn new(client: kube::Client, urls: Arc<dyn UrlFetcher>) -> Self {
        Self { client, urls }
    }

    /// Fetches the bytes of `plugin`'s source (not yet verified).
    pub async fn fetch(&self, plugin: &RouterPlugin) -> Result<Bytes> {
        let namespace = plugin
            .metadata
            .namespace
            .as_deref()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        self.fetch_source(namespace, &plugin.spec.source).await
    }

    /// Fetches the bytes of a source in `namespace` (not yet verified).
    pub async fn fetch_source(&self, namespace: &str, source: &PluginSource) -> Result<Bytes> {
        if let Some(cm) = &source.config_map {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
            let Some(map) = api.get_opt(&cm.name).await? else {
                return Err(Error::ConfigMapNotFound {
                    namespace: namespace.to_string(),
                    name: cm.name.clone(),
                });
            };
            let found = map.binary_data.as_ref().and_then(|d| d.get(&cm.key));
            return match found {
                Some(bytes) if bytes.0.len() > MAX_COMPONENT_BYTES => Err(Error::TooLarge {
                    limit: MAX_COMPONENT_BYTES,
                }),
                Some(bytes) => Ok(Bytes::from(bytes.0.clone())),
                None => Err(Error::KeyNotFound {
                    namespace: namespace.to_string(),
                    name: cm.name.clone(),
                    key: cm.key.clone(),
                    hint: if map.data.as_ref().is_some_and(|d| d.contains_key(&cm.key)) {
                        " (it is under data; create it with --from-file so it lands in binaryData)"
                    } else {
                        ""
                    },
                }),
            };
        }
        match &source.url {
            Some(url) => self.urls.fetch(url).await,
            None => Err(Error::Fetch {
                url: String::new(),
                message: "source has neither configMap nor url".to_string(),
            }),
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks `bytes` against the expected lowercase hex digest.
pub fn verify(bytes: &[u8], expected: &str) -> Result<String> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(actual)
    } else {
        Err(Error::DigestMismatch {
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_checked() {
        let good = sha256_hex(b"abc");
        assert_eq!(
            good,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(verify(b"abc", &good).is_ok());
        let err = verify(b"abd", &good).unwrap_err();
        assert!(err.to_string().contains("sha256 mismatch"), "{err}");
    }
}
