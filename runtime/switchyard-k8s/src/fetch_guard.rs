//! Where plugin `url` sources may be fetched from. The operator fetches URLs that any user
//! able to create a RouterPlugin writes, so without limits a RouterPlugin is a request
//! forgery tool: cluster-internal services, the node's loopback and the cloud metadata
//! endpoint (credentials) are all reachable from the operator's pod.
//!
//! Rules: `https` only; every address a host name resolves to is classified and refused when
//! private, loopback, link-local, shared (CGNAT), unspecified, multicast or a metadata
//! address — checked on the resolved addresses the connection then uses, so a DNS answer
//! cannot change between check and connect. Hosts in the allow-list
//! (`SWITCHYARD_PLUGIN_FETCH_ALLOW_HOSTS`, comma-separated host names or IP literals) skip
//! both rules, for in-cluster registries.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// Environment variable of the allow-list.
pub const ALLOW_HOSTS_ENV: &str = "SWITCHYARD_PLUGIN_FETCH_ALLOW_HOSTS";

/// Which hosts skip the https and address rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    pub allowed_hosts: Vec<String>,
}

impl FetchPolicy {
    pub fn from_env() -> Self {
        Self::allowing(&std::env::var(ALLOW_HOSTS_ENV).unwrap_or_default())
    }

    /// A policy allowing the comma-separated `hosts`.
    pub fn allowing(hosts: &str) -> Self {
        Self {
            allowed_hosts: hosts
                .split(',')
                .map(|h| h.trim().trim_start_matches('[').trim_end_matches(']'))
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        }
    }

    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether a URL of `scheme` to `host` may be requested at all (before resolution).
    pub fn check_url(&self, scheme: &str, host: &str) -> Result<(), &'static str> {
        if scheme == "https" || self.allows_host(host) {
            Ok(())
        } else {
            Err("plugin URLs must use https")
        }
    }
}

/// Why `ip` may not be fetched from, or `None` when it is a public address.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            refused_v6(v6)
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("reserved")
    } else {
        None
    }
}

/// A DNS resolver for hyper-util's connector that drops refused addresses (and fails when
/// none is left), unless the host is allow-listed.
#[derive(Clone)]
pub struct GuardedResolver {
    pub policy: Arc<FetchPolicy>,
}

type Resolved = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = Resolved;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Resolved>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.allows_host(&host) {
                return Ok(addrs.into_iter());
            }
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| refused(a.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the host resolves only to non-public addresses",
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused_by_class() {
        let cases = [
            ("169.254.169.254", Some("metadata")),
            ("100.100.100.200", Some("metadata")),
            ("fd00:ec2::254", Some("metadata")),
            ("127.0.0.1", Some("loopback")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("fd12::1", Some("private")),
            ("169.254.1.1", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("100.64.0.1", Some("shared")),
            ("0.0.0.0", Some("unspecified")),
            ("::", Some("unspecified")),
            ("224.0.0.1", Some("reserved")),
            ("255.255.255.255", Some("reserved")),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("2606:4700::1111", None),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(refused(ip), want, "{ip}");
        }
    }

    #[test]
    fn http_needs_an_allow_listed_host() {
        let policy = FetchPolicy::allowing(" registry.local , [::1]");
        assert!(policy.check_url("https", "example.com").is_ok());
        assert!(policy.check_url("http", "example.com").is_err());
        assert!(policy.check_url("http", "Registry.Local").is_ok());
        assert!(policy.check_url("http", "[::1]").is_ok());
    }
}
