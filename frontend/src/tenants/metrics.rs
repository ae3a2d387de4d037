//! Per-tenant metrics. Labels are tenant ids from the configured list, so cardinality is
//! bounded by it; keys never appear.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::limiter::Limit;
use super::Tenants;

/// Counters of one tenant; they survive reloads that keep the tenant's id.
#[derive(Debug, Default)]
pub struct TenantMetrics {
    /// Admitted requests by final status.
    requests: Mutex<BTreeMap<u16, u64>>,
    rate_limited: [AtomicU64; 3],
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    /// Time spent waiting for room under flow control, and how many requests waited.
    queue_wait_us: AtomicU64,
    queued: AtomicU64,
}

impl TenantMetrics {
    pub fn count_request(&self, status: u16) {
        *self.requests.lock().entry(status).or_default() += 1;
    }

    pub fn count_refusal(&self, limit: Limit) {
        self.rate_limited[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A request of this tenant waited `waited` for an instance with room.
    pub fn count_queue_wait(&self, waited: std::time::Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.queue_wait_us.fetch_add(us, Ordering::Relaxed);
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_tokens(&self, input: u64, output: u64) {
        self.input_tokens.fetch_add(input, Ordering::Relaxed);
        self.output_tokens.fetch_add(output, Ordering::Relaxed);
    }
}

pub const REQUESTS: &str = "switchyard_tenant_requests_total";
pub const RATE_LIMITED: &str = "switchyard_tenant_rate_limited_total";
pub const TOKENS: &str = "switchyard_tenant_tokens_total";
pub const IN_FLIGHT: &str = "switchyard_tenant_in_flight";
pub const QUEUE_WAIT: &str = "switchyard_tenant_queue_wait_seconds";
pub const AUTH_FAILURES: &str = "switchyard_tenant_auth_failures_total";
pub const RELOADS: &str = "switchyard_tenants_reloads_total";
pub const CONFIGURED: &str = "switchyard_tenants_configured";

/// Appends the tenant series (nothing when tenants are off).
pub fn render(out: &mut String, tenants: &Tenants) {
    let Some(set) = tenants.current() else {
        return;
    };
    let _ = writeln!(out, "# HELP {CONFIGURED} Tenants in the running list.\n# TYPE {CONFIGURED} gauge\n{CONFIGURED} {}", set.len());
    let (ok, failed) = tenants.reload_counts();
    let _ = writeln!(out, "# HELP {RELOADS} Reloads of the tenants file by result (a failed one keeps the running list).\n# TYPE {RELOADS} counter\n{RELOADS}{{result=\"ok\"}} {ok}\n{RELOADS}{{result=\"error\"}} {failed}");
    let _ = writeln!(out, "# HELP {AUTH_FAILURES} Requests refused 401 invalid_api_key (missing or unknown key).\n# TYPE {AUTH_FAILURES} counter\n{AUTH_FAILURES} {}", tenants.auth_failures());
    let _ = writeln!(out, "# HELP {REQUESTS} Admitted requests by tenant and final status.\n# TYPE {REQUESTS} counter");
    for t in set.iter() {
        for (status, n) in t.metrics.requests.lock().iter() {
            let _ = writeln!(
                out,
                "{REQUESTS}{{tenant=\"{}\",status=\"{status}\"}} {n}",
                t.id
            );
        }
    }
    let _ = writeln!(out, "# HELP {RATE_LIMITED} Requests refused 429 rate_limit_exceeded by tenant and limit.\n# TYPE {RATE_LIMITED} counter");
    for t in set.iter() {
        for limit in [Limit::Requests, Limit::Tokens, Limit::Concurrency] {
            let n = t.metrics.rate_limited[limit as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{RATE_LIMITED}{{tenant=\"{}\",limit=\"{}\"}} {n}",
                t.id,
                limit.label()
            );
        }
    }
    let _ = writeln!(out, "# HELP {TOKENS} Tokens the engines reported (prompt = input, completion = output) by tenant.\n# TYPE {TOKENS} counter");
    for t in set.iter() {
        let (i, o) = (&t.metrics.input_tokens, &t.metrics.output_tokens);
        let _ = writeln!(
            out,
            "{TOKENS}{{tenant=\"{}\",direction=\"input\"}} {}",
            t.id,
            i.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "{TOKENS}{{tenant=\"{}\",direction=\"output\"}} {}",
            t.id,
            o.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(out, "# HELP {QUEUE_WAIT} Time the tenant's requests waited for room under flow control (_sum seconds, _count requests that waited).\n# TYPE {QUEUE_WAIT} summary");
    for t in set.iter() {
        let sum = t.metrics.queue_wait_us.load(Ordering::Relaxed) as f64 / 1e6;
        let n = t.metrics.queued.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{QUEUE_WAIT}_sum{{tenant=\"{}\"}} {sum}\n{QUEUE_WAIT}_count{{tenant=\"{}\"}} {n}",
            t.id, t.id
        );
    }
    let _ = writeln!(out, "# HELP {IN_FLIGHT} Requests of the tenant in flight (streams until their last byte).\n# TYPE {IN_FLIGHT} gauge");
    for t in set.iter() {
        let _ = writeln!(
            out,
            "{IN_FLIGHT}{{tenant=\"{}\"}} {}",
            t.id,
            t.limiter.in_flight()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_labelled_by_tenant_id_and_never_by_key() {
        let hex: String = super::super::config::digest(b"sk-secret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let specs = super::super::config::parse_file(&format!("- id: team\n  key_sha256: {hex}\n"))
            .unwrap();
        let tenants = Tenants::load(&specs, None).unwrap();
        let set = tenants.current().unwrap();
        let team = set.by_id("team").unwrap();
        team.metrics.count_request(200);
        team.metrics.count_refusal(Limit::Tokens);
        team.metrics.count_tokens(7, 5);
        team.metrics
            .count_queue_wait(std::time::Duration::from_millis(1500));
        let mut out = String::new();
        render(&mut out, &tenants);
        for line in [
            "switchyard_tenant_requests_total{tenant=\"team\",status=\"200\"} 1",
            "switchyard_tenant_rate_limited_total{tenant=\"team\",limit=\"tokens\"} 1",
            "switchyard_tenant_tokens_total{tenant=\"team\",direction=\"input\"} 7",
            "switchyard_tenant_tokens_total{tenant=\"team\",direction=\"output\"} 5",
            "switchyard_tenant_queue_wait_seconds_sum{tenant=\"team\"} 1.5",
            "switchyard_tenant_queue_wait_seconds_count{tenant=\"team\"} 1",
            "switchyard_tenants_configured 1",
        ] {
            assert!(out.contains(line), "missing `{line}` in:\n{out}");
        }
        assert!(!out.contains("sk-secret") && !out.contains(&hex));

        let mut open = String::new();
        render(&mut open, &Tenants::load(&[], None).unwrap());
        assert!(open.is_empty(), "no tenant series without tenants");
    }
}
