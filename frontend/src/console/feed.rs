//! `GET /admin/decisions/stream`: routing decisions as server-sent events, one
//! `event: decision` per decision with its explanation as `data` (the same JSON as
//! `GET /admin/explain/{id}`).
//!
//! While at least one feed is open every decision is explained (see `ExplainLog::watch`):
//! explaining costs a string per candidate per stage, so it is paid only while watched.
//! The stream starts with the last few explanations already kept, sends a comment every
//! 15 s so proxies keep it open and a gone client is noticed, and says in a comment how many
//! decisions a watcher too slow to keep up skipped. It ends within a second of the frontend
//! starting to shut down: an open console must not hold the shutdown for its whole grace.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::app::App;
use crate::body::Body;
use crate::plugins::explain::{Explanation, Watch};

/// Explanations replayed to a new watcher.
const BACKLOG: usize = 20;
/// How often the feed looks at the shutdown flag; every 15th look sends a keep-alive.
const TICK: Duration = Duration::from_secs(1);
const TICKS_PER_KEEP_ALIVE: u32 = 15;
/// Frames buffered toward one client before the feed waits for it.
const CLIENT_BUFFER: usize = 64;

/// `GET /admin/decisions/stream` (already authorized).
pub fn stream(app: &Arc<App>) -> Response<Body> {
    let watch = app.plugins.explains.watch();
    let backlog = app.plugins.explains.latest(BACKLOG);
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    // Ends when the client goes (the body, and with it `rx`, is dropped) or the feed closes.
    let app_ = Arc::clone(app);
    let draining = move || app_.draining.load(std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(forward(watch, backlog, tx, draining));
    let mut response = Response::new(Body::Channel(rx));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn forward(
    mut watch: Watch,
    backlog: Vec<Arc<Explanation>>,
    tx: mpsc::Sender<Bytes>,
    draining: impl Fn() -> bool,
) {
    if tx
        .send(Bytes::from_static(b": decisions\n\n"))
        .await
        .is_err()
    {
        return;
    }
    for explanation in backlog {
        if tx.send(event(&explanation)).await.is_err() {
            return;
        }
    }
    let mut tick = tokio::time::interval(TICK);
    tick.tick().await;
    let mut quiet_ticks = 0;
    loop {
        let frame = tokio::select! {
            received = watch.decisions.recv() => match received {
                Ok(explanation) => event(&explanation),
                Err(RecvError::Lagged(skipped)) => {
                    Bytes::from(format!(": {skipped} decisions skipped (the reader fell behind)\n\n"))
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if draining() {
                    let _ = tx.send(Bytes::from_static(b": the frontend is shutting down\n\n")).await;
                    return;
                }
                quiet_ticks += 1;
                if quiet_ticks < TICKS_PER_KEEP_ALIVE {
                    continue;
                }
                quiet_ticks = 0;
                Bytes::from_static(b": keep-alive\n\n")
            }
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

/// One SSE event. `serde_json` escapes newlines inside strings, so the JSON is one line and
/// cannot end the event early.
fn event(explanation: &Explanation) -> Bytes {
    let json = serde_json::to_string(explanation).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: decision\ndata: {json}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::explain::ExplainLog;

    fn explanation(id: &str) -> Explanation {
        Explanation {
            request_id: id.to_owned(),
            model: "m\nx".to_owned(),
            tenant: None,
            candidates: Vec::new(),
            stages: Vec::new(),
            total_scores: None,
            pick: vec!["i0".to_owned()],
        }
    }

    #[tokio::test]
    async fn a_watcher_gets_the_backlog_then_live_decisions_and_leaving_stops_explaining() {
        let log = ExplainLog::default();
        log.push(explanation("old"));
        assert!(!log.watched());
        let watch = log.watch();
        assert!(log.watched());
        let (tx, mut rx) = mpsc::channel(8);
        let task = tokio::spawn(forward(watch, log.latest(BACKLOG), tx, || false));
        let mut frames = Vec::new();
        for _ in 0..2 {
            frames.push(rx.recv().await.unwrap());
        }
        log.push(explanation("new"));
        frames.push(rx.recv().await.unwrap());
        let text: Vec<String> = frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        assert_eq!(text[0], ": decisions\n\n");
        assert!(text[1].starts_with("event: decision\ndata: {\"request_id\":\"old\""));
        assert!(text[2].contains("\"request_id\":\"new\""));
        // One line of data per event, even with a newline in a value.
        assert_eq!(text[2].matches('\n').count(), 3, "{}", text[2]);
        drop(rx);
        log.push(explanation("after"));
        task.await.unwrap();
        assert!(!log.watched(), "a closed feed must stop the explaining");
    }

    #[tokio::test(start_paused = true)]
    async fn the_feed_ends_when_the_frontend_starts_draining() {
        let log = ExplainLog::default();
        let (tx, mut rx) = mpsc::channel(8);
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&draining);
        let task = tokio::spawn(forward(log.watch(), Vec::new(), tx, move || {
            flag.load(std::sync::atomic::Ordering::Relaxed)
        }));
        assert_eq!(rx.recv().await.unwrap(), ": decisions\n\n");
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
        // Paused time: the next tick comes at once, and the feed says why it ends.
        assert_eq!(
            rx.recv().await.unwrap(),
            ": the frontend is shutting down\n\n"
        );
        assert!(rx.recv().await.is_none(), "the feed must end");
        task.await.unwrap();
    }
}
