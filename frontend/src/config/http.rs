//! `http:` — the client-facing side: listen address, TLS, limits on what clients send, and
//! the admin API.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// `http:` in the YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Address of the OpenAI API (`--listen`).
    pub listen: SocketAddr,
    /// TLS on `listen` (HTTP/1.1 and HTTP/2 by ALPN; certificate reloaded on change).
    pub tls: Option<crate::tls::TlsConfig>,
    pub limits: HttpLimits,
    /// Bearer token for `/admin/*`; the admin API is disabled without one.
    pub admin_token: Option<String>,
    /// The admin API's own listener, token file and the explain token.
    pub admin: crate::admin_listener::AdminConfig,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            tls: None,
            limits: HttpLimits::default(),
            admin_token: None,
            admin: Default::default(),
        }
    }
}

impl HttpSection {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        self.admin
            .validate(self.admin_token.as_deref())
            .map_err(|m| invalid("http.admin", m))?;
        if let Some(token) = &self.admin_token {
            if token.len() < 8 {
                return Err(invalid("http.admin_token", "must be at least 8 characters"));
            }
        }
        Ok(())
    }
}

/// Limits on what clients may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    /// A client must send its request headers within this time.
    #[serde(
        rename = "header_read_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub header_read_timeout_ms: u64,
    /// Bytes of request line + headers accepted per request.
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    #[serde(
        rename = "shutdown_grace",
        with = "switchyard_protocol::duration::millis"
    )]
    pub shutdown_grace_ms: u64,
    /// The whole request body must arrive within this time.
    #[serde(
        rename = "body_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub body_timeout_ms: u64,
    /// A request body that sends nothing for this long is abandoned.
    #[serde(
        rename = "body_idle_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub body_idle_timeout_ms: u64,
    /// Header fields accepted per request (more is answered 431).
    pub max_headers: usize,
    /// On shutdown, keep accepting for this long with `/health` answering 503 (so load
    /// balancers stop sending traffic) before the listener closes.
    #[serde(rename = "drain_delay", with = "switchyard_protocol::duration::millis")]
    pub drain_delay_ms: u64,
    /// Request-body bytes held by all requests at once (read, parsed, being sent upstream).
    /// A body is charged before it is read; see `pipeline/body_budget.rs`. At least
    /// `max_body_bytes`, at most 4 GiB − 1.
    pub max_inflight_body_bytes: usize,
    /// How long a body waits for room in `max_inflight_body_bytes` before it is refused
    /// (503 `body_budget_exhausted`).
    #[serde(
        rename = "body_budget_wait",
        with = "switchyard_protocol::duration::millis"
    )]
    pub body_budget_wait_ms: u64,
    /// Open client connections; more are answered 503 and closed. Unset: half of the
    /// process's soft `RLIMIT_NOFILE`.
    pub max_connections: Option<usize>,
    /// Open connections per client IP address; 0 = no per-address cap.
    pub max_connections_per_ip: usize,
    /// Idle time before TCP keepalive probes on client connections; 0 = off.
    #[serde(
        rename = "tcp_keepalive",
        with = "switchyard_protocol::duration::millis"
    )]
    pub tcp_keepalive_ms: u64,
    /// A client connection whose writes make no progress for this long (the client stopped
    /// reading) is closed, and its stream ends; 0 = never.
    #[serde(
        rename = "write_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub write_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 64 * 1024,
            shutdown_grace_ms: 30_000,
            body_timeout_ms: 60_000,
            body_idle_timeout_ms: 10_000,
            max_headers: 128,
            drain_delay_ms: 0,
            max_inflight_body_bytes: 64 * 1024 * 1024,
            body_budget_wait_ms: 2_000,
            max_connections: None,
            max_connections_per_ip: 0,
            tcp_keepalive_ms: 60_000,
            write_timeout_ms: 30_000,
        }
    }
}

impl HttpLimits {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(invalid(
                "http.limits.max_body_bytes",
                "must be greater than 0",
            ));
        }
        let positive = [
            ("http.limits.body_timeout", self.body_timeout_ms),
            ("http.limits.body_idle_timeout", self.body_idle_timeout_ms),
            (
                "http.limits.header_read_timeout",
                self.header_read_timeout_ms,
            ),
        ];
        for (key, ms) in positive {
            if ms == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        // Room for a request line and a handful of headers; smaller refuses every client.
        if self.max_header_bytes < 1024 {
            return Err(invalid(
                "http.limits.max_header_bytes",
                "must be at least 1024",
            ));
        }
        if self.max_headers == 0 {
            return Err(invalid("http.limits.max_headers", "must be at least 1"));
        }
        if self.max_connections == Some(0) {
            return Err(invalid("http.limits.max_connections", "must be at least 1"));
        }
        // A body the pool could never hold would wait and be refused every time.
        if self.max_inflight_body_bytes < self.max_body_bytes {
            return Err(invalid(
                "http.limits.max_inflight_body_bytes",
                "must be at least http.limits.max_body_bytes",
            ));
        }
        if u32::try_from(self.max_inflight_body_bytes).is_err() {
            return Err(invalid(
                "http.limits.max_inflight_body_bytes",
                "must be below 4 GiB",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_validated_by_key() {
        assert!(HttpSection::default().validate().is_ok());
        type Break = fn(&mut HttpSection);
        let cases: [(&str, Break); 8] = [
            ("http.limits.max_inflight_body_bytes", |c| {
                c.limits.max_inflight_body_bytes = c.limits.max_body_bytes - 1
            }),
            ("http.limits.max_inflight_body_bytes", |c| {
                c.limits.max_inflight_body_bytes = 1 << 32
            }),
            ("http.limits.max_header_bytes", |c| {
                c.limits.max_header_bytes = 512
            }),
            ("http.limits.max_headers", |c| c.limits.max_headers = 0),
            ("http.limits.max_body_bytes", |c| {
                c.limits.max_body_bytes = 0
            }),
            ("http.limits.header_read_timeout", |c| {
                c.limits.header_read_timeout_ms = 0
            }),
            ("http.limits.body_idle_timeout", |c| {
                c.limits.body_idle_timeout_ms = 0
            }),
            ("http.admin_token", |c| c.admin_token = Some("short".into())),
        ];
        for (key, break_it) in cases {
            let mut section = HttpSection::default();
            break_it(&mut section);
            let err = section.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn durations_are_humantime_strings() {
        let section: HttpSection =
            serde_yaml::from_str("limits: { body_timeout: 2m, write_timeout: 500ms }\n").unwrap();
        assert_eq!(section.limits.body_timeout_ms, 120_000);
        assert_eq!(section.limits.write_timeout_ms, 500);
        let err = serde_yaml::from_str::<HttpSection>("limits: { body_timeout: 120 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no unit"), "{err}");
    }
}
