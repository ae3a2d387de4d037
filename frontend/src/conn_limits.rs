//! Connection limits at accept: a cap on open client connections below the process's file
//! descriptor limit, an optional cap per client IP, and TCP keepalive on accepted sockets.
//!
//! Without a cap, enough idle connections exhaust `RLIMIT_NOFILE` and the frontend can no
//! longer open sockets to workers (or accept anything). Over a cap a connection gets a
//! canned 503 (best effort, one non-blocking write) and is closed before any of it is read;
//! the refusal is counted by reason. Keepalive lets the kernel find peers that vanished
//! without a FIN, so their connections (and anything they hold) do not live forever.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::config::HttpLimits;
use crate::error::ApiError;

/// By default client connections may use `RLIMIT_NOFILE / 2`: each client connection that
/// is generating holds a worker connection too, and files, probes and the admin listener
/// need the rest.
const NOFILE_DIVISOR: u64 = 2;

/// Why a connection was refused (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }
}

/// The frontend's open client connections and their limits.
#[derive(Debug)]
pub struct ConnLimits {
    max: usize,
    per_ip: usize,
    keepalive: Option<Duration>,
    open: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    refused_total: AtomicU64,
    refused_per_ip: AtomicU64,
    /// Connections closed because the client stopped reading (`limits.write_timeout_ms`).
    pub write_timeouts: AtomicU64,
}

/// One admitted connection; releases its place on drop.
#[derive(Debug)]
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl ConnLimits {
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            max: limits
                .max_connections
                .unwrap_or_else(default_max_connections),
            per_ip: limits.max_connections_per_ip,
            keepalive: (limits.tcp_keepalive_ms > 0)
                .then(|| Duration::from_millis(limits.tcp_keepalive_ms)),
            open: AtomicUsize::new(0),
            by_ip: Mutex::new(HashMap::new()),
            refused_total: AtomicU64::new(0),
            refused_per_ip: AtomicU64::new(0),
            write_timeouts: AtomicU64::new(0),
        }
    }

    /// The effective cap on open connections.
    pub fn max(&self) -> usize {
        self.max
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn refused(&self, reason: Refusal) -> u64 {
        match reason {
            Refusal::MaxConnections => self.refused_total.load(Ordering::Relaxed),
            Refusal::MaxConnectionsPerIp => self.refused_per_ip.load(Ordering::Relaxed),
        }
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        if admitted.is_err() {
            self.refused_total.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::MaxConnections);
        }
        let mut guard = ConnGuard {
            limits: Arc::clone(self),
            ip: None,
        };
        if self.per_ip > 0 {
            let mut by_ip = self.by_ip.lock();
            let count = by_ip.entry(ip).or_insert(0);
            if *count >= self.per_ip {
                drop(by_ip);
                self.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::MaxConnectionsPerIp); // `guard` returns the global place
            }
            *count += 1;
            guard.ip = Some(ip);
        }
        Ok(guard)
    }

    /// Sets TCP keepalive on an accepted socket (best effort: a failure is logged).
    pub fn configure(&self, stream: &TcpStream) {
        let _ = stream.set_nodelay(true);
        if let Some(idle) = self.keepalive {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(idle.min(Duration::from_secs(10)));
            if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%error, "could not set TCP keepalive");
            }
        }
    }
}

impl ConnGuard {
    pub fn limits(&self) -> &ConnLimits {
        &self.limits
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut by_ip = self.limits.by_ip.lock();
            if let Some(count) = by_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a refused connection with a 503 in OpenAI's shape if its send buffer takes it
/// at once (it always does on a fresh socket), then drops it. Nothing is read.
pub fn refuse(stream: TcpStream, reason: Refusal) {
    let message = match reason {
        Refusal::MaxConnections => "The server is at its connection limit; retry later.",
        Refusal::MaxConnectionsPerIp => {
            "This client address is at its connection limit; close idle connections or retry later."
        }
    };
    let body = ApiError::unavailable(message)
        .with_code("connection_limit")
        .body()
        .to_json();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// The soft `RLIMIT_NOFILE` divided by [`NOFILE_DIVISOR`] (an unlimited one counts as 2^20).
fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20)
        .min(1 << 20);
    usize::try_from(soft / NOFILE_DIVISOR).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits::new(&HttpLimits {
            max_connections: Some(max),
            max_connections_per_ip: per_ip,
            ..HttpLimits::default()
        }))
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn the_cap_refuses_the_connection_over_it_and_a_closed_one_frees_its_place() {
        let l = limits(2, 0);
        let first = l.admit(A).unwrap();
        let _second = l.admit(B).unwrap();
        assert_eq!(l.admit(A).unwrap_err(), Refusal::MaxConnections);
        assert_eq!((l.open(), l.refused(Refusal::MaxConnections)), (2, 1));
        drop(first);
        assert!(l.admit(A).is_ok());
    }

    #[test]
    fn the_per_ip_cap_counts_each_address_and_returns_the_global_place() {
        let l = limits(10, 1);
        let a = l.admit(A).unwrap();
        assert_eq!(l.admit(A).unwrap_err(), Refusal::MaxConnectionsPerIp);
        let _b = l.admit(B).unwrap();
        assert_eq!(l.open(), 2, "the refused connection holds no place");
        assert_eq!(l.refused(Refusal::MaxConnectionsPerIp), 1);
        drop(a);
        assert!(l.by_ip.lock().get(&A).is_none(), "no entry left behind");
        assert!(l.admit(A).is_ok());
    }

    #[test]
    fn the_default_cap_is_below_the_file_descriptor_limit() {
        let l = Arc::new(ConnLimits::new(&HttpLimits::default()));
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(soft) = soft {
            assert!(l.max() < soft as usize, "{} vs {soft}", l.max());
        }
        assert!(l.max() >= 1);
    }
}
