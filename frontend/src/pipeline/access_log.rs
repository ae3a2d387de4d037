//! The access log: one JSON object per request, logged at `info` under the target
//! `switchyard::access` when the request's bookkeeping ends (a stream's at its last byte).
//! The binary writes these events to stdout as bare JSON lines (other logs go to stderr);
//! `SWITCHYARD_LOG=info,switchyard::access=off` turns it off. The fields are listed in
//! docs/metrics.md ("Access log").
//!
//! Cheap by construction: nothing is collected unless the target is enabled when the request
//! starts, and the figures are relaxed atomics touched where the metrics are.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

/// The `tracing` target of access-log events.
pub const TARGET: &str = "switchyard::access";

/// Whether access-log events would be recorded now.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// What one request's line says besides what the tracker already knows.
#[derive(Debug, Default)]
pub struct Access {
    request_id: OnceLock<Box<str>>,
    /// The instance that answered (for a migrated stream, the one it started on).
    instance: parking_lot::Mutex<Option<Box<str>>>,
    ttft_us: AtomicU64,
    output_tokens: AtomicU64,
    retries: AtomicU32,
    migrations: AtomicU32,
    /// The request's W3C trace id, when it has one (the client's, or one export started).
    trace_id: OnceLock<[u8; 16]>,
}

impl Access {
    pub fn set_request_id(&self, id: &str) {
        let _ = self.request_id.set(id.into());
    }

    pub fn set_trace_id(&self, id: [u8; 16]) {
        let _ = self.trace_id.set(id);
    }

    pub fn set_instance(&self, id: &str) {
        *self.instance.lock() = Some(id.into());
    }

    pub fn ttft(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.ttft_us.compare_exchange(0, us, Relaxed, Relaxed);
    }

    pub fn output_tokens(&self, n: u64) {
        self.output_tokens.fetch_add(n, Relaxed);
    }

    pub fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub fn migration(&self) {
        self.migrations.fetch_add(1, Relaxed);
    }

    /// The JSON line for a request that ended with `status` after `duration`: written into
    /// one buffer (strings escaped by serde_json), not built as a `Value` map.
    pub fn line(
        &self,
        route: &str,
        model: Option<&str>,
        tenant: Option<&str>,
        status: u16,
        duration: Duration,
    ) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(256);
        out.push_str("{\"request_id\":");
        json_str(&mut out, self.request_id.get().map(|s| &**s));
        out.push_str(",\"route\":");
        json_str(&mut out, Some(route));
        out.push_str(",\"model\":");
        json_str(&mut out, model);
        out.push_str(",\"tenant\":");
        json_str(&mut out, tenant);
        out.push_str(",\"instance\":");
        json_str(&mut out, self.instance.lock().as_deref());
        let ttft = self.ttft_us.load(Relaxed);
        let _ = write!(out, ",\"status\":{status},\"ttft_ms\":");
        if ttft > 0 {
            let _ = write!(out, "{}", ttft as f64 / 1e3);
        } else {
            out.push_str("null");
        }
        let _ = write!(
            out,
            ",\"output_tokens\":{},\"duration_ms\":{},\"retries\":{},\"migrations\":{}}}",
            self.output_tokens.load(Relaxed),
            duration.as_secs_f64() * 1e3,
            self.retries.load(Relaxed),
            self.migrations.load(Relaxed),
        );
        if let Some(id) = self.trace_id.get() {
            out.pop();
            let _ = write!(
                out,
                ",\"trace_id\":\"{}\"}}",
                crate::telemetry::trace_id_hex(id)
            );
        }
        out
    }
}

/// A JSON string (escaped) or `null`.
fn json_str(out: &mut String, s: Option<&str>) {
    match s.and_then(|s| serde_json::to_string(s).ok()) {
        Some(quoted) => out.push_str(&quoted),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_one_json_object_with_every_field() {
        let a = Access::default();
        a.set_request_id("r1");
        a.set_instance("w0");
        a.ttft(Duration::from_millis(12));
        a.ttft(Duration::from_millis(99));
        a.output_tokens(5);
        a.retry();
        a.migration();
        let line = a.line(
            "chat_completions",
            Some("m"),
            Some("team-a"),
            200,
            Duration::from_millis(40),
        );
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["route"], "chat_completions");
        assert_eq!(v["model"], "m");
        assert_eq!(v["instance"], "w0");
        assert_eq!(v["status"], 200);
        assert_eq!(v["ttft_ms"], 12.0, "the first token only");
        assert_eq!(v["output_tokens"], 5);
        assert_eq!(v["duration_ms"], 40.0);
        assert_eq!(v["retries"], 1);
        assert_eq!(v["migrations"], 1);
        let hostile = Access::default();
        hostile.set_request_id("a\"b\n");
        let v: serde_json::Value =
            serde_json::from_str(&hostile.line("r", None, None, 500, Duration::ZERO)).unwrap();
        assert_eq!(v["request_id"], "a\"b\n", "strings are escaped");
        let empty = Access::default().line("embeddings", None, None, 404, Duration::ZERO);
        let v: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert!(v["request_id"].is_null() && v["instance"].is_null() && v["ttft_ms"].is_null());
        assert!(v["tenant"].is_null(), "no tenant without tenants");
        assert!(v.get("trace_id").is_none(), "no trace, no field");
        let traced = Access::default();
        traced.set_trace_id([0xab; 16]);
        let v: serde_json::Value =
            serde_json::from_str(&traced.line("r", None, None, 200, Duration::ZERO)).unwrap();
        assert_eq!(v["trace_id"], "ab".repeat(16));
    }
}
