//! A process-wide monotonic clock in nanoseconds, so health deadlines fit in an atomic.

use std::sync::OnceLock;
use std::time::Instant;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process (monotonic).
pub fn now_ns() -> u64 {
    u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The instant [`now_ns`] counts from (shared with the plugin host, so plugins' clock and
/// the observation times they receive agree).
pub fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}
