//! Progress on a terminal for long commands: a bar with rows, rate and
//! time left for a file being ingested, and an elapsed-time line for work
//! whose size is not known up front (profile, compaction, key migration).
//!
//! Only when standard error is a terminal: a log, a pipe or a test
//! capturing output sees nothing extra. Lines are redrawn in place with a
//! carriage return, at most ten times a second, and never name a value
//! from the data (a dataset id, counts and times only).

use std::io::{self, IsTerminal, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(100);
const BAR: usize = 24;

/// A reader that counts the bytes read through it, for a progress bar
/// over a file of known size.
pub(crate) struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    pub(crate) fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                read: read.clone(),
            },
            read,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Whether a command shows a bar, and what is left of it when done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// No bar (the caller reports progress its own way).
    Off,
    /// The finished bar stays, with its time: one command, one file.
    Keep,
    /// The bar is wiped when done, for a caller that prints its own line
    /// per file (`demo`).
    Clear,
}

/// A progress bar over `total` bytes of input.
pub(crate) struct Bar {
    label: String,
    total: u64,
    start: Instant,
    last: Option<Instant>,
    on: bool,
    keep: bool,
}

impl Bar {
    /// A bar for `label` over `total` bytes, drawn only when `show` asks
    /// for one and standard error is a terminal.
    pub(crate) fn new(label: &str, total: u64, show: Show) -> Self {
        Bar {
            label: label.to_owned(),
            total,
            start: Instant::now(),
            last: None,
            on: show != Show::Off && io::stderr().is_terminal(),
            keep: show == Show::Keep,
        }
    }

    /// `rows` rows done, `bytes` of the input read.
    pub(crate) fn update(&mut self, rows: u64, bytes: u64) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < REDRAW) {
            return;
        }
        self.last = Some(now);
        self.draw(rows, bytes.min(self.total), now - self.start, false);
    }

    /// Done: the last line and a new line, or (`Show::Clear`) nothing left.
    pub(crate) fn finish(&mut self, rows: u64) {
        if !self.on {
            return;
        }
        self.on = false;
        if self.keep {
            self.draw(rows, self.total, self.start.elapsed(), true);
        } else {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }

    fn draw(&self, rows: u64, bytes: u64, elapsed: Duration, done: bool) {
        let line = bar_line(&self.label, rows, bytes, self.total, elapsed, done);
        let mut err = io::stderr().lock();
        // A terminal that went away is not worth an error.
        let _ = write!(err, "\r{line}\x1b[K");
        if done {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// The bar's text: label, bar, percent, rows, rate, and time left (or the
/// time taken once done).
fn bar_line(
    label: &str,
    rows: u64,
    bytes: u64,
    total: u64,
    elapsed: Duration,
    done: bool,
) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        bytes as f64 / total as f64
    };
    let filled = ((fraction * BAR as f64).round() as usize).min(BAR);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { rows as f64 / secs } else { 0.0 };
    let when = if done {
        format!("in {}", clock(secs))
    } else if fraction > 0.0 {
        format!("{} left", clock(secs * (1.0 - fraction) / fraction))
    } else {
        "…".to_owned()
    };
    format!(
        "  {label} [{}{}] {:>3.0}% {rows} rows, {} rows/s, {when}",
        "#".repeat(filled),
        ".".repeat(BAR - filled),
        fraction * 100.0,
        human(rate),
    )
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// An elapsed-time line for work of unknown size, redrawn by a thread
/// until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Start `label… 3s` on a terminal; nothing otherwise.
    pub(crate) fn start(label: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = io::stderr().is_terminal().then(|| {
            let (stop, label) = (stop.clone(), label.to_owned());
            std::thread::spawn(move || {
                let start = Instant::now();
                let frames = ['|', '/', '-', '\\'];
                let mut i = 0;
                loop {
                    let done = stop.load(Ordering::Relaxed);
                    let mut err = io::stderr().lock();
                    let secs = start.elapsed().as_secs_f64();
                    if done {
                        let _ = writeln!(err, "\r  {label}: done in {}\x1b[K", clock(secs));
                        return;
                    }
                    let _ = write!(err, "\r  {label} {} {}\x1b[K", frames[i % 4], clock(secs));
                    let _ = err.flush();
                    drop(err);
                    i += 1;
                    // Wake often enough to stop promptly.
                    for _ in 0..5 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        });
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_share_rate_and_time_left() {
        let line = bar_line("d.s", 5000, 250, 1000, Duration::from_secs(10), false);
        assert!(line.contains("[######..................]"), "{line}");
        assert!(
            line.contains(" 25% 5000 rows, 500 rows/s, 30s left"),
            "{line}"
        );
        let done = bar_line("d.s", 20000, 1000, 1000, Duration::from_secs(125), true);
        assert!(
            done.contains("100% 20000 rows, 160 rows/s, in 2m05s"),
            "{done}"
        );
        let empty = bar_line("d.s", 0, 0, 0, Duration::ZERO, true);
        assert!(empty.contains("100% 0 rows, 0 rows/s, in 0s"), "{empty}");
        assert_eq!(human(123_456.0), "123.5k");
        assert_eq!(clock(3725.0), "1h02m");
    }
}
