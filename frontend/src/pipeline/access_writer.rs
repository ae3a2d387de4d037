//! Where access-log lines go: stdout, written by a thread of its own.
//!
//! Writing each line from the request's own task through `tracing`'s formatter cost 5–11 µs of
//! CPU per request (one `write` system call per line, plus the formatter's second pass over a
//! line already built), about a tenth of a streamed request's whole cost. Here a request
//! hands its finished line to a bounded channel (no system call, no lock held across I/O) and
//! the writer thread drains whatever has queued into one buffer and writes it with one call,
//! so under load many lines share a system call and an idle frontend still writes each line
//! at once.
//!
//! When stdout cannot keep up (a stalled log pipe) the channel fills and further lines are
//! dropped and counted (`switchyard_access_log_dropped_total`) rather than stalling requests.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::IntCounter;

/// Lines queued at most: about 16 MiB of typical 250-byte lines.
const QUEUE: usize = 65_536;

enum Line {
    Text(String),
    /// Write everything queued before this, then answer.
    Flush(SyncSender<()>),
}

/// The access log's writer; started by the first line.
#[derive(Debug)]
pub struct AccessWriter {
    tx: OnceLock<Option<SyncSender<Line>>>,
    dropped: IntCounter,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Line::Text(_) => "Text",
            Line::Flush(_) => "Flush",
        })
    }
}

impl AccessWriter {
    pub fn new(dropped: IntCounter) -> Self {
        Self {
            tx: OnceLock::new(),
            dropped,
        }
    }

    /// Queues one line (without its newline) for stdout.
    pub fn write(&self, line: String) {
        let Some(tx) = self.tx.get_or_init(|| start(std::io::stdout)) else {
            self.dropped.inc();
            return;
        };
        match tx.try_send(Line::Text(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// Waits (at most `within`) until every line queued so far is written: called when the
    /// frontend stops, so the last requests' lines are not lost with the process.
    pub fn flush(&self, within: Duration) {
        let Some(Some(tx)) = self.tx.get() else {
            return;
        };
        let (ack, done) = sync_channel(1);
        if tx.send(Line::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(within);
        }
    }
}

/// Starts the writer thread over `out`; `None` (every line dropped and counted) if the thread
/// cannot be started.
fn start<W, F>(out: F) -> Option<SyncSender<Line>>
where
    F: Fn() -> W + Send + 'static,
    W: std::io::Write,
{
    let (tx, rx) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || drain(&rx, out))
        .ok()?;
    Some(tx)
}

/// Writes batches until every sender is gone: each batch is whatever queued while the last
/// one was written.
fn drain<W: std::io::Write>(rx: &Receiver<Line>, out: impl Fn() -> W) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let Ok(first) = rx.recv() else {
            return;
        };
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(line) = next {
            match line {
                Line::Text(text) => {
                    batch.extend_from_slice(text.as_bytes());
                    batch.push(b'\n');
                }
                Line::Flush(ack) => acks.push(ack),
            }
            next = (batch.len() < 1 << 20)
                .then(|| rx.try_recv().ok())
                .flatten();
        }
        // A log that cannot be written is not a reason to stop serving; the lines are lost.
        let _ = out().write_all(&batch);
        batch.clear();
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::Arc;

    /// A shared in-memory "stdout".
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_queued_before_a_flush_is_written_in_order() {
        let sink = Sink::default();
        let out = sink.clone();
        let writer = AccessWriter {
            tx: OnceLock::from(start(move || out.clone())),
            dropped: IntCounter::new("d", "d").unwrap(),
        };
        for i in 0..1000 {
            writer.write(format!("{{\"n\":{i}}}"));
        }
        writer.flush(Duration::from_secs(10));
        let text = String::from_utf8(sink.0.lock().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[0], "{\"n\":0}");
        assert_eq!(lines[999], "{\"n\":999}");
        assert_eq!(writer.dropped.get(), 0);
    }

    #[test]
    fn lines_beyond_a_stalled_queue_are_dropped_and_counted() {
        // No writer thread: the queue fills and stays full.
        let (tx, _rx) = sync_channel(2);
        let writer = AccessWriter {
            tx: OnceLock::from(Some(tx)),
            dropped: IntCounter::new("d", "d").unwrap(),
        };
        for _ in 0..5 {
            writer.write("x".into());
        }
        assert_eq!(writer.dropped.get(), 3);
    }
}
