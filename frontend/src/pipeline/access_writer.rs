//! Where access-log lines go: stdout, in batches.
//!
//! Written from the request's own task through `tracing`'s formatter, each line cost one
//! `write` system call plus a second formatting pass, 5–11 µs per request. A channel to a
//! writer thread was measured worse (81.6 vs 69.2 µs per streamed request at c=64): every
//! line then also woke the thread. Here a request appends its line to a shared buffer (a short
//! lock and a copy, no system call, no wake-up), and a thread writes whatever has gathered
//! every [`FLUSH_EVERY`] with one call. A line reaches stdout at most that much later.
//!
//! When stdout cannot keep up (a stalled log pipe) the buffer stops at [`MAX_BUFFERED`] and
//! further lines are dropped and counted (`switchyard_access_log_dropped_total`) rather than
//! stalling requests or growing without bound.

use std::sync::{Arc, Once};
use std::time::Duration;

use parking_lot::Mutex;
use prometheus::IntCounter;

/// How often gathered lines are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Bytes gathered at most between writes (about 64 k typical lines).
const MAX_BUFFERED: usize = 16 << 20;

/// The access log's writer; its thread starts with the first line.
#[derive(Debug)]
pub struct AccessWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
    /// Serialises writes (the thread's and [`AccessWriter::flush`]'s) so lines keep their order.
    writing: Arc<Mutex<()>>,
    started: Once,
    dropped: IntCounter,
}

impl AccessWriter {
    pub fn new(dropped: IntCounter) -> Self {
        Self {
            buffer: Arc::default(),
            writing: Arc::default(),
            started: Once::new(),
            dropped,
        }
    }

    /// Queues one line (without its newline) for stdout.
    pub fn write(&self, line: String) {
        self.started.call_once(|| self.start());
        let mut buffer = self.buffer.lock();
        if buffer.len() + line.len() >= MAX_BUFFERED {
            drop(buffer);
            self.dropped.inc();
            return;
        }
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
    }

    /// Writes every line gathered so far, now: called when the frontend stops, so the last
    /// requests' lines are not lost with the process.
    pub fn flush(&self) {
        write_out(&self.buffer, &self.writing, &mut std::io::stdout());
    }

    fn start(&self) {
        let (buffer, writing) = (Arc::clone(&self.buffer), Arc::clone(&self.writing));
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                write_out(&buffer, &writing, &mut std::io::stdout());
                // The App is gone (only this thread holds the buffer): nothing more will come.
                if Arc::strong_count(&buffer) == 1 {
                    return;
                }
            });
        if spawned.is_err() {
            tracing::warn!("could not start the access-log writer; lines are written at shutdown");
        }
    }
}

/// Takes what has gathered and writes it with one call.
fn write_out(buffer: &Mutex<Vec<u8>>, writing: &Mutex<()>, out: &mut impl std::io::Write) {
    let _order = writing.lock();
    let batch = std::mem::take(&mut *buffer.lock());
    if !batch.is_empty() {
        // A log that cannot be written is not a reason to stop serving; the lines are lost.
        let _ = out.write_all(&batch);
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> AccessWriter {
        AccessWriter::new(IntCounter::new("d", "d").unwrap())
    }

    #[test]
    fn lines_gather_in_order_and_go_out_in_one_write() {
        let w = writer();
        // Not through `write`: no thread, so the test sees exactly what one flush writes.
        for i in 0..1000 {
            let mut b = w.buffer.lock();
            b.extend_from_slice(format!("{{\"n\":{i}}}\n").as_bytes());
        }
        let mut out = Vec::new();
        write_out(&w.buffer, &w.writing, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!((lines[0], lines[999]), ("{\"n\":0}", "{\"n\":999}"));
        assert!(w.buffer.lock().is_empty(), "a flush empties the buffer");
    }

    #[test]
    fn lines_beyond_the_buffer_bound_are_dropped_and_counted() {
        let w = writer();
        w.started.call_once(|| {}); // no thread: the buffer only fills
        w.buffer.lock().resize(MAX_BUFFERED - 10, b'x');
        w.write("short".into());
        w.write("this one no longer fits".into());
        assert_eq!(w.dropped.get(), 1);
        assert_eq!(w.buffer.lock().len(), MAX_BUFFERED - 10 + 6);
    }
}
