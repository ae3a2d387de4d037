//! OpenAI's rate-limit headers, on every response to a tenant:
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. `reset` is the time until the
//! bucket is full again, written the way OpenAI writes it (`20ms`, `1.5s`, `6m0s`).

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::limiter::Window;
use super::set::Tenant;

/// Adds the headers for each limit the tenant has (none for an unlimited dimension).
pub fn stamp(tenant: &Tenant, headers: &mut HeaderMap) {
    let now = Instant::now();
    if let Some(w) = tenant.limiter.requests_window(now) {
        put(headers, "requests", w);
    }
    if let Some(w) = tenant.limiter.tokens_window(now) {
        put(headers, "tokens", w);
    }
}

fn put(headers: &mut HeaderMap, what: &'static str, w: Window) {
    let names: [(&str, String); 3] = [
        ("limit", w.limit.to_string()),
        ("remaining", w.remaining.to_string()),
        ("reset", duration_text(w.reset)),
    ];
    for (field, value) in names {
        let name = format!("x-ratelimit-{field}-{what}");
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name),
            HeaderValue::try_from(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// `0s`, `20ms`, `1.5s`, `6m0s`, `1h2m3s`: whole milliseconds below a second, seconds with
/// up to three decimals above.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            "1ms".into()
        };
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = format!("{}.{:03}", rest / 1000, rest % 1000);
    let secs = secs.trim_end_matches('0').trim_end_matches('.');
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(duration_text(Duration::ZERO), "0s");
        assert_eq!(duration_text(Duration::from_micros(10)), "1ms");
        assert_eq!(duration_text(Duration::from_millis(20)), "20ms");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration_text(Duration::from_secs(1)), "1s");
        assert_eq!(duration_text(Duration::from_secs(360)), "6m0s");
        assert_eq!(duration_text(Duration::from_secs(3723)), "1h2m3s");
    }
}
