//! The progress bar of `kckpt dump` on a terminal (issue 11): bytes of
//! memory examined out of those mapped, drawn on stderr by a thread of
//! its own once a dump has taken a second (a short dump draws nothing),
//! cleared before the summary line. The memory walk counts
//! ([`add_total`], [`add_done`]); the thread blocks every signal, so that
//! a signal meant for the dump (SIGINT...) is not delivered to it.

use std::io::IsTerminal;
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
            let bar = indicatif::ProgressBar::new(TOTAL.load(Ordering::Relaxed));
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "kckpt: {bytes}/{total_bytes} of memory examined {wide_bar} {elapsed}",
            ) {
                bar.set_style(style);
            }
            while !stop.load(Ordering::Acquire) {
                bar.set_length(TOTAL.load(Ordering::Relaxed));
                bar.set_position(DONE.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
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
