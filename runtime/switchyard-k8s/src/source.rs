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

use crate::fetch_guard::{self, FetchPolicy, GuardedResolver};
use crate::routerplugin::{PluginSource, RouterPlugin};
use crate::{Error, Result};

/// Largest component accepted (Python components are ~18 MB, JS ~12 MB).
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;
/// Timeout of one URL fetch, redirects included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects a fetch follows (release downloads usually redirect once, to a CDN).
pub const MAX_REDIRECTS: usize = 5;

/// Fetches a URL; a trait so tests can serve bytes without a network.
pub trait UrlFetcher: Send + Sync {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes>>;
}

/// HTTP/HTTPS fetcher (rustls with the Mozilla roots and an optional private CA bundle, see
/// [`crate::trust`]; HTTP/1.1). Only `https`, and only public addresses, unless the host is
/// allow-listed ([`crate::fetch_guard`]). Follows up to [`MAX_REDIRECTS`] redirects (301,
/// 302, 303, 307, 308) on the same host, never from `https` down to `http`; the sha256 is
/// checked on the final bytes either way.
pub struct HttpFetcher {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<
            hyper_util::client::legacy::connect::HttpConnector<GuardedResolver>,
        >,
        Empty<Bytes>,
    >,
    policy: Arc<FetchPolicy>,
}

/// Fetches and verifies a plugin's component.
#[derive(Clone)]
pub struct SourceFetcher {
    client: kube::Client,
    urls: Arc<dyn UrlFetcher>,
}

impl HttpFetcher {
    /// A fetcher with the allow-list from `SWITCHYARD_PLUGIN_FETCH_ALLOW_HOSTS`.
    pub fn new() -> Result<Self> {
        Self::with_policy(FetchPolicy::from_env())
    }

    pub fn with_policy(policy: FetchPolicy) -> Result<Self> {
        let policy = Arc::new(policy);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Fetch {
                url: String::new(),
                message: format!("TLS setup: {e}"),
            })?
            .with_root_certificates(crate::trust::roots_from_env()?)
            .with_no_client_auth();
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(
            GuardedResolver {
                policy: Arc::clone(&policy),
            },
        );
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self { client, policy })
    }
}

impl UrlFetcher for HttpFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            let fail = |message: String| Error::Fetch {
                url: url.to_string(),
                message,
            };
            let work = async {
                let mut current = url.to_string();
                let mut origin_host: Option<String> = None;
                for _ in 0..=MAX_REDIRECTS {
                    let uri: http::Uri = current
                        .parse()
                        .map_err(|_| fail("invalid URL".to_string()))?;
                    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
                    match &origin_host {
                        None => origin_host = Some(host.clone()),
                        Some(origin) if *origin != host => {
                            return Err(fail("refusing a redirect to another host".to_string()));
                        }
                        Some(_) => {}
                    }
                    self.check(&uri, &host).map_err(|m| fail(m.to_string()))?;
                    let resp = self
                        .client
                        .get(uri.clone())
                        .await
                        .map_err(|e| fail(connect_error(&e)))?;
                    let status = resp.status();
                    if is_followed_redirect(status) {
                        let location = resp
                            .headers()
                            .get(http::header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .ok_or_else(|| fail(format!("HTTP {status} without a Location")))?;
                        current = redirect_target(&uri, location).map_err(fail)?;
                        continue;
                    }
                    if !status.is_success() {
                        return Err(fail(format!("HTTP {}", status.as_u16())));
                    }
                    let body = Limited::new(resp.into_body(), MAX_COMPONENT_BYTES);
                    return match body.collect().await {
                        Ok(collected) => Ok(collected.to_bytes()),
                        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                            Err(Error::TooLarge {
                                limit: MAX_COMPONENT_BYTES,
                            })
                        }
                        Err(_) => Err(fail("the response body failed".to_string())),
                    };
                }
                Err(fail(format!("more than {MAX_REDIRECTS} redirects")))
            };
            tokio::time::timeout(FETCH_TIMEOUT, work)
                .await
                .map_err(|_| fail(format!("timed out after {}s", FETCH_TIMEOUT.as_secs())))?
        })
    }
}

impl HttpFetcher {
    /// The https rule, and the address rule for IP literals (which skip DNS, so the
    /// resolver never sees them).
    fn check(&self, uri: &http::Uri, host: &str) -> std::result::Result<(), &'static str> {
        self.policy
            .check_url(uri.scheme_str().unwrap_or_default(), host)?;
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            if !self.policy.allows_host(host) && fetch_guard::refused(ip).is_some() {
                return Err("the URL's address is not public");
            }
        }
        Ok(())
    }
}

/// A connect error as a generic message: refused addresses say so, the rest stay vague
/// (the status condition is readable by whoever wrote the URL).
fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return "the host resolves only to non-public addresses".to_string();
            }
        }
        source = err.source();
    }
    "could not connect".to_string()
}

fn is_followed_redirect(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The URL a `Location` header on a response to `base` points at: absolute, scheme-relative
/// (`//host/p`), absolute-path (`/p`) or relative to `base`'s directory. Only `http` and
/// `https` targets are followed, and never from `https` to `http`.
pub fn redirect_target(base: &http::Uri, location: &str) -> std::result::Result<String, String> {
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let target = if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if let Some((target_scheme, _)) = location.split_once("://") {
        if !matches!(target_scheme, "http" | "https") {
            return Err(format!(
                "refusing a redirect to {location}: only http and https"
            ));
        }
        location.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{scheme}://{authority}{dir}/{location}")
    };
    if scheme == "https" && target.starts_with("http://") {
        return Err(format!("refusing a redirect from https to {target}"));
    }
    Ok(target)
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

    #[test]
    fn redirect_targets_resolve_and_never_downgrade() {
        let base: http::Uri = "https://example.com/releases/v1/plugin.wasm"
            .parse()
            .unwrap();
        let ok = |l: &str| redirect_target(&base, l).unwrap();
        assert_eq!(
            ok("https://cdn.example.net/x?sig=1"),
            "https://cdn.example.net/x?sig=1"
        );
        assert_eq!(ok("//cdn.example.net/x"), "https://cdn.example.net/x");
        assert_eq!(ok("/other/p.wasm"), "https://example.com/other/p.wasm");
        assert_eq!(ok("p2.wasm"), "https://example.com/releases/v1/p2.wasm");
        assert!(redirect_target(&base, "http://example.com/p.wasm").is_err());
        assert!(redirect_target(&base, "ftp://example.com/p.wasm").is_err());
        let plain: http::Uri = "http://svc.ns:8080/p.wasm".parse().unwrap();
        assert_eq!(
            redirect_target(&plain, "https://example.com/p.wasm").unwrap(),
            "https://example.com/p.wasm",
            "upgrades are fine"
        );
    }

    /// Serves `/start` → 302 `/next` → 301 absolute `/final` → bytes, and `/loop` → `/loop`.
    async fn redirecting_server() -> String {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let absolute = format!("{base}/final");
        let port = listener.local_addr().unwrap().port();
        let elsewhere = format!("http://localhost:{port}/final");
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (absolute, elsewhere) = (absolute.clone(), elsewhere.clone());
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (status, location, body) = match req.uri().path() {
                        "/start" => (302, Some("/next".to_string()), ""),
                        "/next" => (301, Some(absolute.clone()), ""),
                        "/final" => (200, None, "component bytes"),
                        "/loop" => (307, Some("loop".to_string()), ""),
                        "/elsewhere" => (302, Some(elsewhere.clone()), ""),
                        _ => (404, None, ""),
                    };
                    let mut resp = http::Response::builder().status(status);
                    if let Some(l) = location {
                        resp = resp.header(http::header::LOCATION, l);
                    }
                    let resp = resp
                        .body(http_body_util::Full::new(Bytes::from_static(
                            body.as_bytes(),
                        )))
                        .unwrap();
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
                );
            }
        });
        base
    }

    #[tokio::test]
    async fn url_fetches_follow_a_bounded_number_of_redirects() {
        let base = redirecting_server().await;
        let fetcher = HttpFetcher::with_policy(FetchPolicy::allowing("127.0.0.1")).unwrap();
        let bytes = fetcher.fetch(&format!("{base}/start")).await.unwrap();
        assert_eq!(&bytes[..], b"component bytes");
        let err = fetcher.fetch(&format!("{base}/loop")).await.unwrap_err();
        assert!(err.to_string().contains("more than 5 redirects"), "{err}");
        let err = fetcher.fetch(&format!("{base}/missing")).await.unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }

    #[tokio::test]
    async fn non_public_and_plain_http_urls_are_refused_by_default() {
        let base = redirecting_server().await;
        let port = base.rsplit(':').next().unwrap();
        let fetcher = HttpFetcher::with_policy(FetchPolicy::default()).unwrap();
        let err = fetcher.fetch(&format!("{base}/final")).await.unwrap_err();
        assert!(err.to_string().contains("must use https"), "{err}");
        let err = fetcher
            .fetch(&format!("https://127.0.0.1:{port}/final"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not public"), "{err}");
        // A name is checked on what it resolves to.
        let err = fetcher
            .fetch(&format!("https://localhost:{port}/final"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("non-public addresses"), "{err}");
    }

    #[tokio::test]
    async fn redirects_stay_on_the_same_host_and_errors_echo_nothing_fetched() {
        let base = redirecting_server().await;
        let fetcher =
            HttpFetcher::with_policy(FetchPolicy::allowing("127.0.0.1,localhost")).unwrap();
        let err = fetcher
            .fetch(&format!("{base}/elsewhere"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another host"), "{err}");
        assert!(!err.to_string().contains("localhost"), "{err}");
    }
}
