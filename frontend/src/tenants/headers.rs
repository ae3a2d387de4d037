//! OpenAI's rate-limit headers, on every response to a tenant:
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. `reset` is the time until the
//! bucket is full again, written the way OpenAI writes it (`20ms`, `1.5s`, `6m0s`).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::limiter::Window;
use super::set::Tenant;

/// Adds the headers for each limit the tenant has (none for an unlimited dimension).
pub fn stamp(tenant: &Tenant, headers: &mut HeaderMap) {
    let now = Instant::now();
    if let Some(w) = tenant.limiter.requests_window(now) {
        put(headers, &REQUESTS, w);
    }
    if let Some(w) = tenant.limiter.tokens_window(now) {
        put(headers, &TOKENS, w);
    }
}

/// `x-ratelimit-{limit,remaining,reset}-<what>`: static names, so stamping a response
/// parses no header name (it runs on every tenant response).
type Names = [HeaderName; 3];
static REQUESTS: Names = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];
static TOKENS: Names = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

fn put(headers: &mut HeaderMap, names: &Names, w: Window) {
    let [limit, remaining, reset] = names;
    headers.insert(limit.clone(), HeaderValue::from(w.limit));
    headers.insert(remaining.clone(), HeaderValue::from(w.remaining));
    if let Ok(value) = HeaderValue::try_from(duration_text(w.reset)) {
        headers.insert(reset.clone(), value);
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
