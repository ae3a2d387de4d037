//! The `traceparent` headers the mocker received on its generation routes, newest last, so a
//! test can check that a router propagates W3C trace context: `GET /debug/traceparents`
//! answers them as a JSON array of strings.

use std::collections::VecDeque;

use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;

/// How many are kept (the oldest go first).
const KEEP: usize = 64;

#[derive(Debug, Default)]
pub struct TraceLog(Mutex<VecDeque<String>>);

impl TraceLog {
    pub fn record(&self, headers: &HeaderMap) {
        let Some(value) = headers.get("traceparent").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let mut log = self.0.lock();
        if log.len() == KEEP {
            log.pop_front();
        }
        log.push_back(value.chars().take(256).collect());
    }

    pub fn json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&*self.0.lock()).unwrap_or_default())
    }
}
