//! The progress bar of `kckpt dump` on a terminal (issue 11): bytes of
//! memory examined out of those mapped, drawn on stderr by a thread of
//! its own once a dump has taken a second (a short dump draws nothing),
//! cleared before the summary line. The memory walk counts
//! ([`add_total`], [`add_done`]); the thread blocks every signal, so that
//! a signal meant for the dump (SIGINT...) is not delivered to it.
//!
//! Drawn by hand, not with `indicatif`: this crate is also `libkckpt.a`,
//! which C programs link with nothing else, and indicatif's rate
//! estimates need libm (`pow`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static TOTAL: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);

/// Bytes of memory a process of the dump maps (counted as it is reached).
pub fn add_total(bytes: u64) {
    TOTAL.fetch_add(bytes, Ordering::Relaxed);
}

/// Bytes of memory examined so far.
pub fn add_done(bytes: u64) {
    DONE.fetch_add(bytes, Ordering::Relaxed);
}

/// The drawing thread, stopped and joined when dropped.
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Draw the bar when `wanted` and stderr is a terminal.
pub fn start(wanted: bool) -> Bar {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = (wanted && std::io::stderr().is_terminal()).then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = nix::sys::signal::SigSet::all().thread_block();
            let began = Instant::now();
            // `KCKPT_PROGRESS_AFTER_MS`: another delay than 1 s (tests).
            let after = std::env::var("KCKPT_PROGRESS_AFTER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_millis);
            while began.elapsed() < after {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut err = std::io::stderr();
            let mut drawn = false;
            while !stop.load(Ordering::Acquire) {
                let line = bar_line(
                    DONE.load(Ordering::Relaxed),
                    TOTAL.load(Ordering::Relaxed),
                    began.elapsed(),
                );
                let _ = write!(err, "\r{line}\x1b[K");
                let _ = err.flush();
                drawn = true;
                std::thread::sleep(Duration::from_millis(100));
            }
            if drawn {
                let _ = write!(err, "\r\x1b[K");
                let _ = err.flush();
            }
        })
    });
    Bar { stop, thread }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `kckpt: 1.2 GiB/4.0 GiB of memory examined [#####.....] 3 s`.
fn bar_line(done: u64, total: u64, took: Duration) -> String {
    const WIDTH: u64 = 30;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    format!(
        "kckpt: {}/{} of memory examined [{}{}] {} s",
        crate::cli::human_bytes(done),
        crate::cli::human_bytes(total),
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled),
        took.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_bytes_examined() {
        let line = bar_line(1 << 30, 4 << 30, Duration::from_secs(3));
        assert_eq!(
            line,
            "kckpt: 1.0 GiB/4.0 GiB of memory examined [#######.......................] 3 s"
        );
        assert!(bar_line(5, 0, Duration::ZERO).contains("[......"));
    }
}
