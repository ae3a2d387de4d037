//! Tenants at the edge: who is calling (an API key, compared by its sha256), which models
//! they may use, and their request, token and concurrency limits (`docs/tenants.md`).
//!
//! Without a configured list the frontend stays open. With one, every `/v1/*` request needs
//! a key (`Authorization: Bearer KEY` or `x-api-key: KEY`): a missing or unknown key is 401
//! `invalid_api_key`, an exceeded limit 429 `rate_limit_exceeded` with `Retry-After`, and a
//! model outside the tenant's list the same 404 as a model that does not exist. The list
//! lives behind an atomic pointer: a reload swaps it whole, and requests already admitted
//! keep the tenant they started with.

pub mod bucket;
pub mod config;
pub mod edge;
pub mod glob;
pub mod headers;
pub mod lease;
pub mod limiter;
pub mod metrics;
pub mod reload;
pub mod replicas;
pub mod set;
pub mod share;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{header, HeaderMap};

pub use config::{Priority, TenantSpec};
pub use lease::Lease;
use limiter::Refusal;
pub use set::{Tenant, TenantSet};

use crate::error::ApiError;

/// The running tenant list (or none: open access), its source, and its counters.
#[derive(Debug, Default)]
pub struct Tenants {
    current: ArcSwapOption<TenantSet>,
    /// The file reloaded on change (`tenants_file`); `None` for an inline list.
    file: Option<String>,
    auth_failures: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Frontend replicas the limits are shared among (see [`replicas`]).
    replicas: std::sync::atomic::AtomicU32,
    /// Replicas whose usage reports the shares come from (this one included); 0 while the
    /// limits are split statically.
    usage_replicas: std::sync::atomic::AtomicU32,
}

impl Tenants {
    /// Builds the list from the inline `tenants:` or from `tenants_file` (not both).
    pub fn load(inline: &[TenantSpec], file: Option<&str>) -> Result<Self, String> {
        let set = match file {
            Some(_) if !inline.is_empty() => {
                return Err("set either `tenants` or `tenants_file` (--tenants), not both".into())
            }
            Some(path) => Some(read_file(path, None)?),
            None if inline.is_empty() => None,
            None => Some(TenantSet::build(inline, "tenants", None)?),
        };
        Ok(Self {
            current: ArcSwapOption::new(set.map(Arc::new)),
            file: file.map(str::to_owned),
            ..Self::default()
        })
    }

    /// The running list; `None` when tenants are off.
    pub fn current(&self) -> Option<Arc<TenantSet>> {
        self.current.load_full()
    }

    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// Re-reads the tenants file and swaps the list in; on error the running list stays.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.file else {
            return Ok(0);
        };
        let previous = self.current.load_full();
        match read_file(path, previous.as_deref()) {
            Ok(set) => {
                let replicas = self.replicas.load(Ordering::Relaxed).max(1);
                let now = tokio::time::Instant::now();
                set.iter()
                    .for_each(|t| t.limiter.set_replicas(replicas, now));
                let n = set.len();
                self.current.store(Some(Arc::new(set)));
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Who is calling: `Ok(None)` when tenants are off, the tenant when the key is known,
    /// 401 `invalid_api_key` otherwise.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Arc<Tenant>>, ApiError> {
        let guard = self.current.load();
        let Some(set) = guard.as_ref() else {
            return Ok(None);
        };
        let found = match presented_key(headers) {
            Some(key) => set.find(key).cloned().ok_or(
                "Incorrect API key provided. Use a key configured for a tenant of this frontend.",
            ),
            None => {
                Err("Missing API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.")
            }
        };
        found.map(Some).map_err(|message| {
            self.auth_failures.fetch_add(1, Ordering::Relaxed);
            invalid_api_key(message)
        })
    }

    /// Shares every tenant's limits among `replicas` frontends from now on.
    pub fn set_replicas(&self, replicas: u32) {
        self.replicas.store(replicas.max(1), Ordering::Relaxed);
        if let Some(set) = self.current() {
            let now = tokio::time::Instant::now();
            set.iter()
                .for_each(|t| t.limiter.set_replicas(replicas, now));
        }
    }

    pub fn set_usage_replicas(&self, n: u32) {
        self.usage_replicas.store(n, Ordering::Relaxed);
    }

    pub fn usage_replicas(&self) -> u32 {
        self.usage_replicas.load(Ordering::Relaxed)
    }

    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }
}

/// Reads and validates a tenants file.
fn read_file(path: &str, previous: Option<&TenantSet>) -> Result<TenantSet, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("tenants file {path}: {e}"))?;
    let specs = config::parse_file(&text).map_err(|e| format!("tenants file {path}: {e}"))?;
    TenantSet::build(&specs, "tenants", previous).map_err(|e| format!("tenants file {path}: {e}"))
}

/// The key from `Authorization: Bearer KEY`, else from `x-api-key: KEY` (what Anthropic
/// clients send).
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| {
            let (scheme, rest) = v.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
        })
        .map(<[u8]>::trim_ascii)
        .filter(|k| !k.is_empty());
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|k| !k.is_empty())
    })
}

/// 401 in OpenAI's shape (`invalid_request_error` / `invalid_api_key`).
fn invalid_api_key(message: &str) -> ApiError {
    let mut error = ApiError::unauthorized(message);
    error.kind = "invalid_request_error";
    error.code = Some("invalid_api_key");
    error
}

/// 429 in OpenAI's shape: `type` names the limit (`requests` or `tokens`), `code` is
/// `rate_limit_exceeded`; `Retry-After` is the wait rounded up to whole seconds.
pub(crate) fn rate_limited(tenant: &Tenant, refusal: Refusal) -> ApiError {
    let wait = headers::duration_text(refusal.retry_after);
    let limits = tenant.limiter.limits();
    let what = match refusal.limit {
        limiter::Limit::Requests => format!(
            "requests per second: limit {}",
            limits.requests_per_second.unwrap_or_default()
        ),
        limiter::Limit::Tokens => format!(
            "tokens per minute: limit {}",
            limits.tokens_per_minute.unwrap_or_default()
        ),
        limiter::Limit::Concurrency => format!(
            "concurrent requests: limit {}",
            limits.max_concurrency.unwrap_or_default()
        ),
    };
    let message = format!(
        "Rate limit reached for tenant `{}` on {what}. Please try again in {wait}.",
        tenant.id
    );
    let secs = refusal.retry_after.as_secs_f64().ceil().max(1.0);
    let mut error = ApiError::overloaded(429, message, Duration::from_secs_f64(secs));
    error.kind = match refusal.limit {
        limiter::Limit::Tokens => "tokens",
        _ => "requests",
    };
    error.code = Some("rate_limit_exceeded");
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn tenants() -> Tenants {
        let hex: String = config::digest(b"sk-a")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let specs = config::parse_file(&format!("- id: a\n  key_sha256: {hex}\n")).unwrap();
        Tenants::load(&specs, None).unwrap()
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let t = tenants();
        let by_bearer = t.authenticate(&headers(&[("authorization", "Bearer sk-a")]));
        assert_eq!(by_bearer.unwrap().unwrap().id, "a");
        let by_x = t.authenticate(&headers(&[("x-api-key", "sk-a")]));
        assert_eq!(by_x.unwrap().unwrap().id, "a");
        let lower = t.authenticate(&headers(&[("authorization", "bearer sk-a")]));
        assert_eq!(lower.unwrap().unwrap().id, "a");
        for bad in [
            headers(&[]),
            headers(&[("authorization", "Bearer sk-b")]),
            headers(&[("authorization", "Basic sk-a")]),
            headers(&[("authorization", "Bearer ")]),
        ] {
            let e = t.authenticate(&bad).unwrap_err();
            assert_eq!((e.status, e.code), (401, Some("invalid_api_key")));
        }
        assert_eq!(t.auth_failures(), 4);
    }

    #[test]
    fn without_a_list_everyone_is_let_through() {
        let t = Tenants::load(&[], None).unwrap();
        assert!(t.authenticate(&headers(&[])).unwrap().is_none());
    }

    #[test]
    fn a_bad_reload_keeps_the_running_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.yaml");
        let hex = |k: &[u8]| -> String {
            config::digest(k)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        std::fs::write(&path, format!("- id: a\n  key_sha256: {}\n", hex(b"k1"))).unwrap();
        let path = path.to_str().unwrap().to_owned();
        let t = Tenants::load(&[], Some(&path)).unwrap();
        std::fs::write(&path, "- id: a\n  key_sha256: nothex\n").unwrap();
        let err = t.reload().unwrap_err();
        assert!(err.contains("key_sha256"), "{err}");
        assert!(t.authenticate(&headers(&[("x-api-key", "k1")])).is_ok());
        std::fs::write(&path, format!("- id: a\n  key_sha256: {}\n", hex(b"k2"))).unwrap();
        assert_eq!(t.reload().unwrap(), 1);
        assert!(t.authenticate(&headers(&[("x-api-key", "k1")])).is_err());
        assert!(t.authenticate(&headers(&[("x-api-key", "k2")])).is_ok());
        assert_eq!(t.reload_counts(), (1, 1));
    }
}
