//! The real `nats-server` process comes from the workspace's one harness (`switchyard-tests`);
//! this adds a polling helper for conditions read synchronously.
#![allow(dead_code, unused_imports)]

use std::time::{Duration, Instant};

pub use switchyard_tests::free_port;
pub use switchyard_tests::services::Nats;

/// Polls `cond` until it holds; panics with `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
