//! Per-tenant metrics. Labels are tenant ids from the configured list, so cardinality is
//! bounded by it; keys never appear.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use switchyard_runtime::exposition::Scrape;

use super::limiter::Limit;
use super::Tenants;
use crate::metrics::names;

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

/// The tenant series, for the scrape-time collector (nothing when tenants are off).
pub fn collect(s: &mut Scrape, tenants: &Tenants) {
    let Some(set) = tenants.current() else {
        return;
    };
    s.family(&names::TENANTS_CONFIGURED)
        .value(&[], set.len() as f64);
    let (ok, failed) = tenants.reload_counts();
    s.family(&names::TENANTS_RELOADS)
        .value(&[("result", "ok")], ok as f64)
        .value(&[("result", "error")], failed as f64);
    s.family(&names::TENANT_AUTH_FAILURES)
        .value(&[], tenants.auth_failures() as f64);
    s.family(&names::TENANT_USAGE_REPLICAS)
        .value(&[], f64::from(tenants.usage_replicas()));
    let mut requests = s.family(&names::TENANT_REQUESTS);
    for t in set.iter() {
        for (status, n) in t.metrics.requests.lock().iter() {
            let status = status.to_string();
            requests.value(&[("tenant", &t.id), ("status", &status)], *n as f64);
        }
    }
    let mut limited = s.family(&names::TENANT_RATE_LIMITED);
    for t in set.iter() {
        for limit in [Limit::Requests, Limit::Tokens, Limit::Concurrency] {
            let n = t.metrics.rate_limited[limit as usize].load(Ordering::Relaxed);
            limited.value(&[("tenant", &t.id), ("limit", limit.label())], n as f64);
        }
    }
    let mut tokens = s.family(&names::TENANT_TOKENS);
    for t in set.iter() {
        let (i, o) = (&t.metrics.input_tokens, &t.metrics.output_tokens);
        tokens
            .value(
                &[("tenant", &t.id), ("direction", "input")],
                i.load(Ordering::Relaxed) as f64,
            )
            .value(
                &[("tenant", &t.id), ("direction", "output")],
                o.load(Ordering::Relaxed) as f64,
            );
    }
    let mut wait = s.family(&names::TENANT_QUEUE_WAIT);
    for t in set.iter() {
        let sum = t.metrics.queue_wait_us.load(Ordering::Relaxed) as f64 / 1e6;
        let n = t.metrics.queued.load(Ordering::Relaxed);
        wait.summary(&[("tenant", &t.id)], sum, n);
    }
    let mut in_flight = s.family(&names::TENANT_IN_FLIGHT);
    for t in set.iter() {
        in_flight.value(&[("tenant", &t.id)], f64::from(t.limiter.in_flight()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(tenants: &Tenants) -> String {
        let mut s = Scrape::default();
        collect(&mut s, tenants);
        switchyard_runtime::exposition::encode_families(&s.into_families())
    }

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
        let out = encode(&tenants);
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

        switchyard_runtime::exposition::check(&out).unwrap();
        let open = encode(&Tenants::load(&[], None).unwrap());
        assert!(open.is_empty(), "no tenant series without tenants");
    }
}
