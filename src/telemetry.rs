//! Logging: `tracing` events as one JSON object per line on stdout, filtered by `RUST_LOG`
//! (default `info`).
//!
//! Every admission decision is one event with target [`DECISION_TARGET`], so
//! `RUST_LOG=info,podguard::decision=off` silences decisions while keeping the rest.
//!
//! The line is written by [`JsonLines`] rather than tracing-subscriber's JSON format, which
//! gathers every field into a map of `serde_json::Value`s first: at one line per admission
//! request that was a tenth of the webhook's time. Field order is the event's own.
//!
//! Lines are gathered in a bounded buffer of [`BUFFER_BYTES`] and written by a thread of their
//! own, never on the request's thread: a stalled log pipe (a slow collector, a full disk) must
//! not stall admission. When the buffer is full, lines are dropped and counted
//! ([`dropped_lines`], `podguard_log_lines_dropped_total`), not waited for. The thread writes
//! what has gathered every [`FLUSH_INTERVAL`], or sooner once [`FLUSH_BYTES`] wait: one write
//! for many lines. A queue that wakes its writer for every line (what tracing-appender does)
//! costs a thread wake-up and a write per admission request, and on a small node those showed
//! in the webhook's 99th-percentile latency (BENCHMARKS.md).

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::json::{Escape, string};

/// Target of the one-line-per-decision events.
pub const DECISION_TARGET: &str = "podguard::decision";

/// Bytes of lines waiting for the writer thread at most: about 16,000 decision lines.
pub const BUFFER_BYTES: usize = 8 << 20;

/// How long a line may wait before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes waiting that wake the writer thread before the interval is up.
pub const FLUSH_BYTES: usize = 256 << 10;

static DROPPED: OnceLock<Arc<Shared>> = OnceLock::new();

/// Log lines dropped because the buffer was full (the output did not keep up).
pub fn dropped_lines() -> usize {
    DROPPED.get().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
}

/// Installs the JSON subscriber writing to stdout through the bounded buffer. Keep the guard
/// for the life of the process: dropping it writes what is buffered. Calling it twice is harmless
/// (the second call installs nothing).
pub fn init() -> Flusher {
    let (writer, flusher) = Lines::start(std::io::stdout(), BUFFER_BYTES);
    let _ = DROPPED.set(writer.0.clone());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
    flusher
}

/// The buffer shared by the loggers and the writer thread.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: enough bytes wait, or the process is stopping.
    wake: Condvar,
    dropped: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    buffer: Vec<u8>,
    stopping: bool,
    /// The writer thread has written its last batch.
    finished: bool,
}

/// The `MakeWriter` of the subscriber: each event's line is formatted on the logging thread and
/// appended whole to the shared buffer (or dropped and counted when it would not fit).
#[derive(Debug, Clone)]
pub struct Lines(Arc<Shared>, usize);

impl Lines {
    /// Starts the writer thread over `out`; lines beyond `limit` bytes waiting are dropped.
    pub fn start<W: std::io::Write + Send + 'static>(out: W, limit: usize) -> (Self, Flusher) {
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("podguard-log".into())
            .spawn(move || {
                write_batches(&thread_shared, out);
                if let Ok(mut state) = thread_shared.state.lock() {
                    state.finished = true;
                }
                thread_shared.wake.notify_all();
            })
            .ok();
        (Self(shared.clone(), limit), Flusher { shared, thread })
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> usize {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// The writer thread: waits for lines, takes all that gathered, writes them in one call.
fn write_batches<W: std::io::Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let stopping = {
            let Ok(mut state) = shared.state.lock() else { return };
            if state.buffer.len() < FLUSH_BYTES && !state.stopping {
                state = match shared.wake.wait_timeout(state, FLUSH_INTERVAL) {
                    Ok((state, _)) => state,
                    Err(_) => return,
                };
            }
            std::mem::swap(&mut batch, &mut state.buffer);
            state.stopping
        };
        if !batch.is_empty() {
            // Nowhere to report a failed log write; the lines are lost either way.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            // A burst may have grown it: do not keep megabytes for the quiet times after.
            batch.shrink_to(FLUSH_BYTES);
        }
        if stopping {
            return;
        }
    }
}

/// One event's line, appended to the buffer when dropped.
#[derive(Debug)]
pub struct Line<'a> {
    lines: &'a Lines,
    text: Vec<u8>,
}

impl std::io::Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let shared = &self.lines.0;
        let Ok(mut state) = shared.state.lock() else { return };
        if state.buffer.len() + self.text.len() > self.lines.1 {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = state.buffer.len();
        state.buffer.extend_from_slice(&self.text);
        if before < FLUSH_BYTES && state.buffer.len() >= FLUSH_BYTES {
            shared.wake.notify_all();
        }
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line { lines: self, text: Vec::with_capacity(512) }
    }
}

/// Writes what is buffered and stops the writer thread when dropped.
#[derive(Debug)]
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long stopping waits for the last lines to be written: a stalled output (a full pipe no
/// one reads) must not keep the process from exiting.
pub const FLUSH_ON_STOP: Duration = Duration::from_secs(1);

impl Drop for Flusher {
    fn drop(&mut self) {
        let Ok(mut state) = self.shared.state.lock() else { return };
        state.stopping = true;
        self.shared.wake.notify_all();
        if self.thread.take().is_none() {
            return;
        }
        // The thread is left behind if it does not finish in time (it is blocked writing).
        let _ = self.shared.wake.wait_timeout_while(state, FLUSH_ON_STOP, |s| !s.finished);
    }
}

/// `{"timestamp":"…","level":"INFO","message":"…",<fields>,"target":"…"}` and a newline.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\"", event.metadata().level())?;
        let mut fields = Fields { w: &mut w, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        w.write_str(",\"target\":")?;
        string(&mut w, event.metadata().target())?;
        w.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            let w = &mut *self.w;
            self.result = w.write_char(',').and_then(|()| {
                string(w, field.name())?;
                w.write_char(':')?;
                value(w)
            });
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| string(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, |w| write!(w, "{value}"));
        } else {
            self.field(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escape(w), "{value}")?;
            w.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escape(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_parseable_json_line() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber =
            tracing_subscriber::fmt().event_format(JsonLines).with_writer(move || sink.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            let error = io::Error::other("disk \"full\"");
            tracing::info!(
                target: DECISION_TARGET,
                uid = "u-1",
                user = %"a\"b\\c\nd\u{1}é",
                allowed = false,
                latency_us = 42u64,
                delta = -3i64,
                ratio = 0.5f64,
                nan = f64::NAN,
                error = &error as &(dyn std::error::Error + 'static),
                "decision {}",
                7
            );
            tracing::warn!("second");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "decision 7");
        assert_eq!(v["target"], DECISION_TARGET);
        assert_eq!(v["uid"], "u-1");
        assert_eq!(v["user"], "a\"b\\c\nd\u{1}é");
        assert_eq!(v["allowed"], false);
        assert_eq!(v["latency_us"], 42);
        assert_eq!(v["delta"], -3);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["nan"], "NaN");
        assert_eq!(v["error"], "disk \"full\"");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
        let w: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(w["level"], "WARN");
    }

    /// A log output that accepts nothing until released: a stalled pipe.
    struct Stalled(Arc<(Mutex<bool>, std::sync::Condvar)>);

    impl io::Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, released) = &*self.0;
            let mut open = open.lock().unwrap();
            while !*open {
                open = released.wait(open).unwrap();
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_drops_and_counts_lines_instead_of_blocking_the_logger() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (writer, flusher) = Lines::start(Stalled(gate.clone()), 100 * 64);
        let counter = writer.clone();
        let subscriber = tracing_subscriber::fmt().event_format(JsonLines).with_writer(writer).finish();
        // With a blocking writer the 1,000th line would wait forever for the stalled output;
        // getting past the loop is the test.
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1_000 {
                tracing::info!(i, "decision");
            }
        });
        assert!(counter.dropped() >= 800, "{} dropped", counter.dropped());
        // Stopping does not wait for the stalled output past its limit.
        let started = std::time::Instant::now();
        drop(flusher);
        assert!(started.elapsed() < FLUSH_ON_STOP + Duration::from_secs(1), "{:?}", started.elapsed());
        let (open, released) = &*gate;
        *open.lock().unwrap() = true;
        released.notify_all();
    }

    #[test]
    fn lines_are_written_in_batches_and_all_of_them_by_the_flusher() {
        let buffer = Buffer::default();
        let (writer, flusher) = Lines::start(buffer.clone(), 1 << 20);
        let subscriber = tracing_subscriber::fmt().event_format(JsonLines).with_writer(writer).finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..500 {
                tracing::info!(i, "decision");
            }
        });
        // Written within the interval, without the flusher.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while buffer.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!buffer.0.lock().unwrap().is_empty(), "nothing written within 5 s");
        drop(flusher);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let numbers: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["i"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..500).collect::<Vec<_>>());
    }
}
