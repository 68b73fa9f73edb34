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
//! Lines are handed to a writer thread through a bounded queue of [`QUEUE_LINES`] lines, never
//! written on the request's thread: a stalled log pipe (a slow collector, a full disk) must not
//! stall admission. When the queue is full, lines are dropped and counted
//! ([`dropped_lines`], `podguard_log_lines_dropped_total`), not waited for.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::json::{Escape, string};

/// Target of the one-line-per-decision events.
pub const DECISION_TARGET: &str = "podguard::decision";

/// Lines waiting for the writer thread at most; about 8 MiB of decision lines.
pub const QUEUE_LINES: usize = 16_384;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines dropped because the queue was full (the output did not keep up).
pub fn dropped_lines() -> usize {
    DROPPED.get().map_or(0, ErrorCounter::dropped_lines)
}

/// Installs the JSON subscriber writing to stdout through the bounded queue. Keep the guard for
/// the life of the process: dropping it flushes what is queued. Calling it twice is harmless (the
/// second call installs nothing; its guard flushes nothing).
pub fn init() -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUE_LINES)
        .lossy(true)
        .thread_name("podguard-log")
        .finish(std::io::stdout());
    let _ = DROPPED.set(writer.error_counter());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
    guard
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
        let (writer, guard) =
            NonBlockingBuilder::default().buffered_lines_limit(100).lossy(true).finish(Stalled(gate.clone()));
        let counter = writer.error_counter();
        let subscriber = tracing_subscriber::fmt().event_format(JsonLines).with_writer(writer).finish();
        // With a blocking writer the 1,000th line would wait forever for the stalled output;
        // getting past the loop is the test.
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1_000 {
                tracing::info!(i, "decision");
            }
        });
        assert!(counter.dropped_lines() >= 800, "{} dropped", counter.dropped_lines());
        let (open, released) = &*gate;
        *open.lock().unwrap() = true;
        released.notify_all();
        drop(guard);
    }
}
