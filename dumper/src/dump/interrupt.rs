//! SIGINT, SIGTERM, SIGHUP and SIGQUIT during a dump: they cancel it
//! cleanly (those the process ignores, as under `nohup`, do not). While an
//! [`Interrupts`] guard lives they are blocked (in this
//! thread and in every thread it starts, such as the memory writer) and
//! collected by a non-blocking signalfd; [`check`] reads it at phase
//! boundaries, once per memory chunk and just before the image is linked
//! into place, and turns an arrived signal into [`Error::Interrupted`],
//! which unwinds through the normal error path (target resumed as it was,
//! temporary file gone). The CLI exits with 128 + the signal number.
//!
//! Without a guard (the in-process API, which blocks every signal itself)
//! [`check`] never reports anything.

use std::sync::Mutex;

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Error, Result};

/// The signals that cancel a dump.
const CANCELLING: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The signalfd of the live guards (how many, and the descriptor).
static ARMED: Mutex<(usize, Option<SignalFd>)> = Mutex::new((0, None));

/// Blocks the cancelling signals and arms [`check`] while alive.
pub(crate) struct Interrupts {
    old: Option<SigSet>,
}

/// The cancelling signals this process does not ignore: one started with
/// SIGHUP ignored (`nohup kckpt dump ...`) must not be cancelled by it
/// (blocked signals stay pending even when ignored, and a signalfd would
/// read them).
fn cancelling() -> SigSet {
    let ignored = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .unwrap_or(0);
    let mut set = SigSet::empty();
    for sig in CANCELLING {
        if ignored & (1 << (sig as i32 - 1)) == 0 {
            set.add(sig);
        }
    }
    set
}

impl Interrupts {
    /// Block the signals (before any other thread of the dump starts, so
    /// they inherit the mask) and arm [`check`].
    pub(crate) fn block() -> Interrupts {
        let set = cancelling();
        let mut old = SigSet::empty();
        let ok = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok();
        if let Ok(mut armed) = ARMED.lock() {
            armed.0 += 1;
            if armed.1.is_none() {
                armed.1 =
                    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();
            }
        }
        Interrupts {
            old: ok.then_some(old),
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        if let Ok(mut armed) = ARMED.lock() {
            armed.0 = armed.0.saturating_sub(1);
            if armed.0 == 0 {
                armed.1 = None;
            }
        }
        // A signal that arrived after the last check (the image is
        // complete) is delivered now, with its default effect.
        if let Some(old) = self.old.take() {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }
}

/// `Err(Error::Interrupted)` if a cancelling signal arrived (it is consumed:
/// the error carries it), `Ok` otherwise and when no guard is alive. The
/// error's `outcome` is filled in by whoever knows what was left behind.
pub(crate) fn check() -> Result<()> {
    let Ok(armed) = ARMED.lock() else {
        return Ok(());
    };
    let Some(fd) = &armed.1 else {
        return Ok(());
    };
    match fd.read_signal() {
        Ok(Some(info)) => Err(Error::Interrupted {
            signal: info.ssi_signo as i32,
            outcome: String::new(),
        }),
        _ => Ok(()),
    }
}

/// The name of a signal number (`SIGINT`), or `signal N`.
pub fn signal_name(signo: i32) -> String {
    Signal::try_from(signo)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {signo}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_reported_once() {
        assert!(check().is_ok(), "nothing armed");
        let guard = Interrupts::block();
        assert!(check().is_ok());
        // Thread-directed to this thread, which blocks it: stays pending
        // until the signalfd reads it.
        nix::sys::signal::raise(Signal::SIGHUP).expect("raise");
        match check() {
            Err(Error::Interrupted { signal, .. }) => assert_eq!(signal, Signal::SIGHUP as i32),
            other => panic!("expected an interruption, got {other:?}"),
        }
        assert!(check().is_ok(), "consumed");
        drop(guard);
        assert!(check().is_ok(), "disarmed");
        assert_eq!(signal_name(2), "SIGINT");
        assert_eq!(signal_name(99), "signal 99");
    }
}
