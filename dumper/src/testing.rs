//! Fault injection for the tests of the dumper's own death: with
//! `KCKPT_TEST_DIE_AT=POINT[:N]` in its environment, `kckpt dump` sends
//! itself SIGKILL the N-th time (default: the first) it reaches the named
//! point. The points are listed in dumper/README.md ("A dumper killed at
//! any moment"); the tests in tests/tests/dumper_killed.rs use them to kill
//! the dumper at exact moments, which random kills reach only by luck.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

fn target() -> &'static Option<(String, u64)> {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let spec = std::env::var("KCKPT_TEST_DIE_AT").ok()?;
        let (point, nth) = match spec.split_once(':') {
            Some((p, n)) => (p.to_owned(), n.parse().ok()?),
            None => (spec, 1),
        };
        Some((point, nth))
    })
}

/// SIGKILL this process if `KCKPT_TEST_DIE_AT` names `point` and this is
/// the N-th time it is reached.
pub fn die_at(point: &str) {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    if let Some((wanted, nth)) = target() {
        if wanted == point && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *nth {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
}
